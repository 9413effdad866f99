-- klingq pause: the shared account row, created when klingqd has not yet done so.
-- $1 reason or NULL. Returns halted_reason (a 401 halt is separate from a pause).
INSERT INTO klingq.account (name, paused, paused_reason) VALUES ('default', true, $1)
ON CONFLICT (name) DO UPDATE
  SET paused = true, paused_reason = EXCLUDED.paused_reason, updated_at = now()
RETURNING halted_reason
