-- klingq batch pause|resume: $1 batch (NULL: the unlabelled jobs), $2 paused, $3 reason.
-- A resumed batch comes back at the scheduler's current virtual time (the claim clamps
-- its pass), so it does not catch up on the share it missed.
INSERT INTO klingq.batches AS b (batch, paused, paused_reason) VALUES ($1, $2, $3)
ON CONFLICT (key) DO UPDATE SET paused = $2, paused_reason = $3, updated_at = now()
RETURNING batch
