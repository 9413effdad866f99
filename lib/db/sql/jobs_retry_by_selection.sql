-- klingq retry --batch/--failed: back to queued as if new, keeping the error history;
-- returns the ids. $1 batch or NULL for all, $2 true for failed rows only, false for
-- failed and cancelled, $3 true for the unlabelled jobs only (batch NULL; $1 NULL then).
-- See jobs_retry_by_ids.sql for why the key may change.
-- Keep the SET in step with jobs_retry_by_ids.sql.
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
WHERE ($1::text IS NULL OR batch = $1)
  AND (NOT $3::boolean OR batch IS NULL)
  AND (state = 'failed' OR (NOT $2::boolean AND state = 'cancelled'))
RETURNING id
