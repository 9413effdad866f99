-- What each budgeted batch may still commit: failed jobs were refunded, so they do not
-- count. $1..$4: the price table (for rows whose cost the API has not said yet). The
-- completed jobs from klingq.batch_counts (schema 015), those in flight from klingq.jobs
-- (jobs_batch_idx: only the budgeted batches' dispatching and submitted rows): exact in
-- the claim's transaction like the rows it counts, and as cheap for a batch of 100,000
-- rows as for one of ten. Nothing is read while no batch has a budget.
WITH budgeted AS (
  SELECT batch, key, budget FROM klingq.batches WHERE budget IS NOT NULL
), committed AS (
  SELECT c.key, sum(c.credits + c.uncosted * klingq.expected_cost(c.mode, c.duration, $1, $2, $3, $4)) AS credits
  FROM klingq.batch_counts c
  WHERE EXISTS (SELECT 1 FROM budgeted) AND c.state = 'completed' AND c.key IN (SELECT key FROM budgeted)
  GROUP BY c.key
  UNION ALL
  SELECT j.batch, sum(coalesce(j.credit_cost, klingq.expected_cost(j.mode, j.duration, $1, $2, $3, $4)))
  FROM klingq.jobs j
  WHERE j.batch IN (SELECT batch FROM budgeted) AND j.state IN ('dispatching', 'submitted')
  GROUP BY j.batch
)
SELECT b.batch, (b.budget - coalesce(m.credits, 0))::bigint
FROM budgeted b
LEFT JOIN (SELECT key, sum(credits) AS credits FROM committed GROUP BY key) m ON m.key = b.key
