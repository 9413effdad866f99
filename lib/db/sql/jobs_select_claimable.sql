-- The next runnable rows in claim order, locked: $1 at most; $2..$5 the price table.
SELECT id, klingq.expected_cost(mode, duration, $2, $3, $4, $5), klingq.epoch_ms(run_after),
       batch, day_counted
FROM klingq.jobs
WHERE state = 'queued' AND run_after <= now()
ORDER BY priority DESC, run_after, id LIMIT $1 FOR UPDATE SKIP LOCKED
