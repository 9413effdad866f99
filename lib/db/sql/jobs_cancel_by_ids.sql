-- klingq cancel ID...: cancels the cancellable rows of $1 (bigint[]) and returns their ids.
-- Cancellable: queued, or dispatching with an expired lease (its instance is gone).
-- Under READ COMMITTED the UPDATE re-checks this on rows a dispatcher changed
-- meanwhile, so a job claimed a moment ago is not cancelled.
-- Keep the SET and the cancellable condition in step with jobs_cancel_by_batch.sql.
UPDATE klingq.jobs
SET state = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, wait_reason = NULL
WHERE id = ANY($1::bigint[])
  AND (state = 'queued' OR (state = 'dispatching' AND lease_expires_at < now()))
RETURNING id
