-- Claims at most $1 due downloads for instance $2 (FOR UPDATE SKIP LOCKED, so instances
-- never claim the same row at once): counts the attempt and leases the row for $3
-- seconds. Due: output_next_at has passed, or its owner no longer heartbeats (keep that
-- condition in step with downloads_give_up_stale.sql). Returns id, url, the attempt's
-- number.
WITH due AS (
  SELECT id FROM klingq.jobs
  WHERE output_next_at IS NOT NULL
    AND (output_next_at <= now()
         OR (output_owner IS NOT NULL AND NOT EXISTS (SELECT 1 FROM klingq.instances i
             WHERE i.id = output_owner AND i.heartbeat_at > now() - interval '30 seconds')))
  ORDER BY output_next_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
UPDATE klingq.jobs j SET output_attempts = j.output_attempts + 1, output_owner = $2,
  output_next_at = now() + make_interval(secs => $3)
FROM due WHERE j.id = due.id
RETURNING j.id, j.url, j.output_attempts
