-- The last hour of job_events by minute, new state and error class: the console's
-- throughput sparkline, its 429 (rate_limited) and 402 (no_credit) counts and its
-- failures by class, from one range scan of job_events_at_idx.
SELECT klingq.epoch_ms(date_trunc('minute', at)), to_state::text,
       detail -> 'error' ->> 'class', count(*)
FROM klingq.job_events
WHERE at >= now() - interval '1 hour'
GROUP BY 1, 2, 3
