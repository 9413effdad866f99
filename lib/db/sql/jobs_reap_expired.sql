-- Rows of a crashed instance come back; the same idempotency key makes the resubmit
-- return the job the API already has instead of charging again. Returns what their
-- claims were expected to cost ($1..$4: the price table), to give back.
WITH reaped AS (
  UPDATE klingq.jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL,
    wait_reason = 'lease of ' || lease_owner || ' expired; resubmitting with the same idempotency key'
  WHERE state = 'dispatching' AND lease_expires_at < now()
  RETURNING klingq.expected_cost(mode, duration, $1, $2, $3, $4) AS cost)
SELECT coalesce(sum(cost), 0) FROM reaped
