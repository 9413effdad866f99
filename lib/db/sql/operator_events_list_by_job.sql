-- The operator actions on job $1, oldest first (the console's job timeline).
SELECT klingq.epoch_ms(at), actor, action, reason, detail::text
FROM klingq.operator_events
WHERE job_id = $1
ORDER BY at, id
