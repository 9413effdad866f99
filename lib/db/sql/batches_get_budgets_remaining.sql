-- What each budgeted batch may still commit: failed jobs were refunded, so they do not
-- count. $1..$4: the price table (for rows whose cost the API has not said yet). From
-- klingq.batch_counts (schema 015), exact in the claim's transaction like the rows it
-- counts, and as cheap for a batch of 100,000 rows as for one of ten: one scan of the
-- summary table for all budgeted batches, and none while no batch has a budget.
WITH budgeted AS (
  SELECT batch, key, budget FROM klingq.batches WHERE budget IS NOT NULL
), committed AS (
  SELECT c.key, sum(c.credits + c.uncosted * klingq.expected_cost(c.mode, c.duration, $1, $2, $3, $4)) AS credits
  FROM klingq.batch_counts c
  WHERE EXISTS (SELECT 1 FROM budgeted)
    AND c.state IN ('dispatching', 'submitted', 'completed')
    AND c.key IN (SELECT key FROM budgeted)
  GROUP BY c.key
)
SELECT b.batch, (b.budget - coalesce(m.credits, 0))::bigint
FROM budgeted b LEFT JOIN committed m ON m.key = b.key
