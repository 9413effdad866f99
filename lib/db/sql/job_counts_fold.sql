-- klingq.job_counts (schema 005): the sum of net changes per state, folded back into one
-- row per state first so the table stays small.
WITH folded AS (DELETE FROM klingq.job_counts RETURNING state, n)
INSERT INTO klingq.job_counts (state, n) SELECT state, sum(n) FROM folded GROUP BY state
