-- The claim's candidate batches at priority $1: the unpaused active batches not in $3
-- (keys) that have a runnable row at that priority, lowest pass first, at most $2. A
-- nested loop over batches_pass_idx, one probe of jobs_batch_queue_idx each, stopping
-- at the $2-th hit: the cost grows with the batches looked at, not with the queue.
SELECT b.key, b.batch IS NULL, b.weight, b.max_parallel, b.daily_cap, b.budget, b.pass,
       b.day_count, b.day_key
FROM klingq.batches b
WHERE b.active AND NOT b.paused AND b.key <> ALL($3::text[])
  AND EXISTS (SELECT 1 FROM klingq.jobs j
              WHERE coalesce(j.batch, '') = b.key AND j.state = 'queued' AND j.priority = $1
                AND j.run_after <= now())
ORDER BY b.pass, b.key
LIMIT $2
