-- An operator action (lib/operate): $1 actor, $2 action, $3 job id or NULL, $4 batch or
-- NULL, $5 reason or NULL, $6 detail (jsonb text).
INSERT INTO klingq.operator_events (actor, action, job_id, batch, reason, detail)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
