-- klingq limits: the dashboard view's row of the account, time stamps as text in the
-- session's zone; with where the provider's day begins as the limiter learned it
-- (day_start_ms, NULL: not learned) and whether its reset was reported (Reset-Day).
SELECT account, limits_source,
       rpm_limit, rpm_remaining, rpm_reset_at::text, rpm_paused_until::text,
       day_limit, day_used, day_remaining, day_reset_at::text, day_paused_until::text,
       parallel_limit, in_flight, parallel_paused_until::text,
       balance, balance_at::text, halted_reason, halted_at::text,
       paused, paused_reason, updated_at::text,
       (SELECT a.day_start_ms FROM klingq.account a WHERE a.name = 'default'),
       (SELECT a.day_reset_reported FROM klingq.account a WHERE a.name = 'default')
FROM klingq.limit_state WHERE account = 'default'
