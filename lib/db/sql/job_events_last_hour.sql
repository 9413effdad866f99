-- The last hour of job_events by minute, new state and error class: the console's
-- throughput sparkline, its 429 (rate_limited) and 402 (no_credit) counts and its
-- failures by class, from klingq.event_minutes (schema 015): at most sixty minutes of
-- a few rows each, however many events.
SELECT klingq.epoch_ms(minute), to_state::text, error_class, sum(n)::bigint
FROM klingq.event_minutes
WHERE minute >= date_trunc('minute', now() - interval '1 hour')
GROUP BY 1, 2, 3
HAVING sum(n) <> 0
