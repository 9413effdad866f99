-- The highest priority with a runnable row, below $1 (NULL: any): the first entry of
-- jobs_claimable_idx, as the claim used to read it.
SELECT priority FROM klingq.jobs
WHERE state = 'queued' AND run_after <= now() AND ($1::int IS NULL OR priority < $1::int)
ORDER BY priority DESC, run_after, id LIMIT 1
