-- A submitted job ($1: remote id) reaches its terminal state $2 with url $3, metadata $4
-- and error $5 (or NULL). With $6 the video becomes due for download in the same
-- transaction (schema/006_outputs.sql): a crash right after loses nothing. Never moves a
-- terminal row. A success drops last_error.last (it is already the tail of the history):
-- a job that completed after a transient error has no current error.
UPDATE klingq.jobs SET state = $2::klingq.job_state, url = nullif($3, ''), metadata = $4::jsonb,
  completed_at = now(), next_poll_at = NULL, wait_reason = NULL, updated_at = now(),
  output_next_at = CASE WHEN $6::boolean THEN now() END,
  last_error = CASE WHEN $5::jsonb IS NULL THEN last_error - 'last'
                    ELSE jsonb_build_object('last', $5::jsonb,
                                            'history', coalesce(last_error -> 'history', '[]') || $5::jsonb) END
WHERE remote_id = $1 AND state = 'submitted'
RETURNING id, credit_cost, extract(epoch FROM now() - submitted_at)
