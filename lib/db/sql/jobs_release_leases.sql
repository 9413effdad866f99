-- Unsent rows this instance ($1) holds go back to the queue (shutdown). Returns how many
-- and what their claims were expected to cost ($2..$5: the price table).
WITH released AS (
  UPDATE klingq.jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL,
    wait_reason = 'released at shutdown', day_counted = false
  WHERE state = 'dispatching' AND lease_owner = $1
  RETURNING klingq.expected_cost(mode, duration, $2, $3, $4, $5) AS cost)
SELECT count(*), coalesce(sum(cost), 0) FROM released
