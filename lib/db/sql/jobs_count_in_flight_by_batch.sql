-- Jobs holding a parallel slot, per batch among $1 (keys): for the batches with a
-- max_parallel. Run after the account lock (see jobs_count_in_flight).
SELECT coalesce(batch, ''), count(*)
FROM klingq.jobs
WHERE state IN ('dispatching', 'submitted') AND coalesce(batch, '') = ANY($1::text[])
GROUP BY 1
