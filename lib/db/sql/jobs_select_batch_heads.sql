-- The next runnable rows of each chosen batch, locked: $1 keys, $2 how many of each, $3
-- the priority; $4..$7 the price table. Rows come in each batch's claim order.
SELECT c.key, r.id, r.cost, r.run_after_ms, r.batch, r.day_counted
FROM unnest($1::text[], $2::int[]) WITH ORDINALITY AS c(key, n, ord)
CROSS JOIN LATERAL (
  SELECT j.id, klingq.expected_cost(j.mode, j.duration, $4, $5, $6, $7) AS cost,
         klingq.epoch_ms(j.run_after) AS run_after_ms, j.batch, j.day_counted
  FROM klingq.jobs j
  WHERE coalesce(j.batch, '') = c.key AND j.state = 'queued' AND j.priority = $3
    AND j.run_after <= now()
  ORDER BY j.run_after, j.id
  LIMIT c.n
  FOR UPDATE OF j SKIP LOCKED) r
ORDER BY c.ord, r.run_after_ms, r.id
