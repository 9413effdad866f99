-- Writes the limiter state back; $15 is charged to the known balance in the same statement.
-- $16 day_start_ms (NULL: not learned), $17 day_reset_reported, $18 day_submitted_at,
-- $19 capacity_held_at.
UPDATE klingq.account SET
  rpm_limit = $2, rpm_remaining = $3, rpm_reset_at = klingq.from_epoch_ms($4),
  rpm_next_at = coalesce(klingq.from_epoch_ms($5), '-infinity'),
  poll_next_at = coalesce(klingq.from_epoch_ms($6), '-infinity'),
  rpm_paused_until = klingq.from_epoch_ms($7),
  day_limit = $8, day_used = $9, day_reset_at = klingq.from_epoch_ms($10),
  day_paused_until = klingq.from_epoch_ms($11),
  parallel_limit = $12, parallel_paused_until = klingq.from_epoch_ms($13),
  limits_source = $14, balance = balance - $15,
  day_start_ms = $16, day_reset_reported = $17, day_submitted_at = klingq.from_epoch_ms($18),
  capacity_held_at = klingq.from_epoch_ms($19),
  updated_at = now()
WHERE name = $1
