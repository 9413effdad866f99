-- Which of the batches $1 (keys, in walk order) have a runnable row at priority $2: the
-- first $3 of them, in that order. One probe of jobs_batch_queue_idx per batch, stopping
-- at the $3-th hit: the cost grows with the batches looked at, not with the queue.
SELECT k.key
FROM unnest($1::text[]) WITH ORDINALITY AS k(key, ord)
WHERE EXISTS (SELECT 1 FROM klingq.jobs j
              WHERE coalesce(j.batch, '') = k.key AND j.state = 'queued' AND j.priority = $2
                AND j.run_after <= now())
ORDER BY k.ord
LIMIT $3
