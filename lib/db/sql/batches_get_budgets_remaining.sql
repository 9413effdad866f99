-- What each budgeted batch may still commit: failed jobs were refunded, so they do not
-- count. $1..$4: the price table (for rows whose cost the API has not said yet).
SELECT b.batch,
       b.budget - coalesce((SELECT sum(coalesce(j.credit_cost,
                                                klingq.expected_cost(j.mode, j.duration, $1, $2, $3, $4)))
                            FROM klingq.jobs j
                            WHERE j.batch = b.batch AND j.state IN ('dispatching', 'submitted', 'completed')), 0)
FROM klingq.batches b
WHERE b.budget IS NOT NULL
