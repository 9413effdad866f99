-- The instance that publishes the database-wide metrics: the oldest live one (ties by
-- id), so that a sum over every instance's /metrics counts each job once. Every
-- instance agrees without talking to the others; when the oldest dies, the next oldest
-- takes over within the 30 s of liveness.
SELECT id FROM klingq.instances
WHERE heartbeat_at > now() - interval '30 seconds'
ORDER BY started_at, id
LIMIT 1
