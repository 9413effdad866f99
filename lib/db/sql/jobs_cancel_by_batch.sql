-- klingq cancel --batch: cancels the cancellable rows of batch $1 and returns their ids.
-- Cancellable: queued, or dispatching with an expired lease (its instance is gone).
-- Under READ COMMITTED the UPDATE re-checks this on rows a dispatcher changed
-- meanwhile, so a job claimed a moment ago is not cancelled.
-- Keep the SET and the cancellable condition in step with jobs_cancel_by_ids.sql.
UPDATE klingq.jobs
SET state = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, wait_reason = NULL
WHERE batch = $1
  AND (state = 'queued' OR (state = 'dispatching' AND lease_expires_at < now()))
RETURNING id
