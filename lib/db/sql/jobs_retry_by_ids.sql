-- klingq retry ID...: the failed or cancelled rows of $1 (bigint[]) go back to queued as
-- if new, keeping the error history; returns their ids. A job the API accepted
-- (remote_id set) gets a new idempotency key: with the old one the API would hand back
-- the same failed job. The current error moves to last_error.history.
-- Keep the SET in step with jobs_retry_by_selection.sql.
UPDATE klingq.jobs
SET state = 'queued', attempts = 0, run_after = now(), wait_reason = NULL,
    lease_owner = NULL, lease_expires_at = NULL,
    idempotency_key = CASE WHEN remote_id IS NOT NULL THEN gen_random_uuid()
                           ELSE idempotency_key END,
    remote_id = NULL, url = NULL, credit_cost = NULL, metadata = NULL,
    submitted_at = NULL, completed_at = NULL, next_poll_at = NULL, polls = 0,
    last_error = CASE WHEN last_error ? 'last' THEN jsonb_build_object('history',
      coalesce(last_error -> 'history', '[]'::jsonb) || jsonb_build_array(last_error -> 'last'))
      ELSE last_error END
WHERE id = ANY($1::bigint[]) AND state IN ('failed', 'cancelled')
RETURNING id
