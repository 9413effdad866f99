-- klingq.batch_counts (schema 015): the groups that gathered more than one row, folded
-- back into one (and dropped when they sum to nothing). Groups of one row are left
-- alone, so a quiet batch costs the fold nothing but the scan.
WITH doubled AS (
  SELECT key, state, mode, duration FROM klingq.batch_counts
  GROUP BY 1, 2, 3, 4 HAVING count(*) > 1
), folded AS (
  DELETE FROM klingq.batch_counts c USING doubled d
  WHERE c.key = d.key AND c.state = d.state AND c.mode = d.mode AND c.duration = d.duration
  RETURNING c.key, c.state, c.mode, c.duration, c.n, c.credits, c.uncosted, c.changed_at
)
INSERT INTO klingq.batch_counts (key, state, mode, duration, n, credits, uncosted, changed_at)
SELECT key, state, mode, duration, sum(n), sum(credits), sum(uncosted), max(changed_at)
FROM folded
GROUP BY 1, 2, 3, 4
HAVING sum(n) <> 0 OR sum(credits) <> 0 OR sum(uncosted) <> 0
