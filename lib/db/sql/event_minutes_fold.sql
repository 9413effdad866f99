-- klingq.event_minutes (schema 015): one row per minute, state and error class, and
-- nothing older than two hours (the console reads one).
WITH folded AS (DELETE FROM klingq.event_minutes RETURNING minute, to_state, error_class, n, credits)
INSERT INTO klingq.event_minutes (minute, to_state, error_class, n, credits)
SELECT minute, to_state, error_class, sum(n), sum(credits)
FROM folded
WHERE minute >= now() - interval '2 hours'
GROUP BY 1, 2, 3
HAVING sum(n) <> 0
