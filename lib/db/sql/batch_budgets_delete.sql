-- Removes batch $1's credit cap; returns the batch when it had one.
DELETE FROM klingq.batch_budgets WHERE batch = $1 RETURNING batch
