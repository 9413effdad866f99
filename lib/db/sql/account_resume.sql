-- klingq resume: the shared account row, created when klingqd has not yet done so.
-- Returns halted_reason (a 401 halt is not lifted by a resume).
INSERT INTO klingq.account (name, paused, paused_reason) VALUES ('default', false, NULL)
ON CONFLICT (name) DO UPDATE SET paused = false, paused_reason = NULL, updated_at = now()
RETURNING halted_reason
