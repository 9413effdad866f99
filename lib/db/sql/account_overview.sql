-- The 'default' account row for the console, times as epoch ms, with the database's now
-- (countdowns are computed against it, not the browser's clock).
SELECT limits_source, rpm_limit, rpm_remaining, klingq.epoch_ms(rpm_reset_at),
       klingq.epoch_ms(rpm_paused_until), day_limit, day_used, day_remaining,
       klingq.epoch_ms(day_reset_at), klingq.epoch_ms(day_paused_until), parallel_limit,
       klingq.epoch_ms(parallel_paused_until), balance, klingq.epoch_ms(balance_at),
       halted_reason, klingq.epoch_ms(halted_at), paused, paused_reason,
       klingq.epoch_ms(updated_at), day_start_ms, klingq.epoch_ms(now())
FROM klingq.account
WHERE name = 'default'
