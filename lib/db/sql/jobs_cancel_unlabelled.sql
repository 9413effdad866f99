-- The console's cancel of the unlabelled batch (batch NULL): cancels its cancellable rows
-- and returns their ids. Keep the SET and the cancellable condition in step with
-- jobs_cancel_by_batch.sql (a statement of its own so that the labelled one keeps its
-- plan on jobs_batch_idx, which holds no unlabelled rows).
UPDATE klingq.jobs
SET state = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, wait_reason = NULL
WHERE batch IS NULL
  AND (state = 'queued' OR (state = 'dispatching' AND lease_expires_at < now()))
RETURNING id
