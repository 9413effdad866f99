-- What each budgeted batch may still commit: failed jobs were refunded, so they do not
-- count. $1..$4: the price table (for rows whose cost the API has not said yet). From
-- klingq.batch_counts (schema 015), exact in the claim's transaction like the rows it
-- counts, and as cheap for a batch of 100,000 rows as for one of ten.
SELECT b.batch,
       b.budget - coalesce((SELECT sum(c.credits + c.uncosted * klingq.expected_cost(c.mode, c.duration, $1, $2, $3, $4))
                            FROM klingq.batch_counts c
                            WHERE c.key = b.key AND c.state IN ('dispatching', 'submitted', 'completed')), 0)::bigint
FROM klingq.batches b
WHERE b.budget IS NOT NULL
