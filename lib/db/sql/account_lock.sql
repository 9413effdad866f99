-- The shared limiter and credit state, locked for the rest of the transaction. The
-- database's clock comes with it, so every instance decides on the same time.
-- $1 account
SELECT rpm_limit, rpm_remaining, klingq.epoch_ms(rpm_reset_at), klingq.epoch_ms(rpm_next_at),
       klingq.epoch_ms(poll_next_at), klingq.epoch_ms(rpm_paused_until),
       day_limit, day_used, klingq.epoch_ms(day_reset_at), klingq.epoch_ms(day_paused_until),
       parallel_limit, klingq.epoch_ms(parallel_paused_until), limits_source,
       balance, halted_reason, paused, klingq.epoch_ms(clock_timestamp()),
       EXISTS (SELECT 1 FROM klingq.batches WHERE budget IS NOT NULL),
       day_start_ms, day_reset_reported, klingq.epoch_ms(day_submitted_at),
       klingq.epoch_ms(capacity_held_at)
FROM klingq.account WHERE name = $1 FOR UPDATE
