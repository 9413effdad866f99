-- Which of the batches $1 (keys, in walk order) have a runnable row at priority $2: the
-- first $3 of them, in that order, each with how many runnable rows it has, counted up
-- to $4 (a batch at $4 may have more). One probe of jobs_batch_queue_idx per batch, in
-- the index's order so that it stops at the $4-th row, and no more batches after the
-- $3-th hit: the cost grows with the batches looked at and $4, not with the queue.
SELECT k.key, r.n
FROM unnest($1::text[]) WITH ORDINALITY AS k(key, ord)
CROSS JOIN LATERAL (SELECT count(*) AS n
                    FROM (SELECT 1 FROM klingq.jobs j
                          WHERE coalesce(j.batch, '') = k.key AND j.state = 'queued' AND j.priority = $2
                            AND j.run_after <= now()
                          ORDER BY j.run_after, j.id
                          LIMIT $4) x) r
WHERE r.n > 0
ORDER BY k.ord
LIMIT $3
