-- The provider's day need not begin at 00:00 UTC. What the limiter learned about it is
-- shared by every instance and survives a restart:
--   day_start_ms        when, after 00:00 UTC, the API's day begins (milliseconds), learned
--                       from its Remaining-Day showing room again, a Reset-Day header or a
--                       daily 429's Retry-After; NULL until then (limits.day_starts_at, else
--                       00:00 UTC, is assumed).
--   day_reset_reported  day_reset_at came from a Reset-Day header; false: it is assumed,
--                       so while the daily cap holds dispatch klingq looks at the API's count
--                       again (a balance query) at least once a minute.
--   day_submitted_at    when submits were last taken (by any instance): two answer deadlines
--                       later no answer still on its way can be staler than the day's count.
ALTER TABLE klingq.account
  ADD COLUMN day_start_ms bigint CHECK (day_start_ms >= 0 AND day_start_ms < 86400000),
  ADD COLUMN day_reset_reported boolean NOT NULL DEFAULT false,
  ADD COLUMN day_submitted_at timestamptz;
