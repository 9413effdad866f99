-- A submitted job ($1: remote id) reaches its terminal state $2 with url $3, metadata $4
-- and error $5 (or NULL). With $6 the video becomes due for download in the same
-- transaction (schema/006_outputs.sql): a crash right after loses nothing. $7: a poll
-- found it (its generation time is the middle of the last two polls), else a webhook
-- said it now. Never moves a terminal row.
UPDATE klingq.jobs SET state = $2::klingq.job_state, url = nullif($3, ''), metadata = $4::jsonb,
  completed_at = now(), next_poll_at = NULL, wait_reason = NULL, updated_at = now(),
  output_next_at = CASE WHEN $6::boolean THEN now() END,
  generation_ms = CASE
    WHEN $2::klingq.job_state <> 'completed' OR submitted_at IS NULL THEN NULL
    WHEN $7::boolean AND polled_at IS NOT NULL THEN
      greatest(0, (klingq.epoch_ms(greatest(coalesce(prior_polled_at, submitted_at), submitted_at))
                   + klingq.epoch_ms(polled_at)) / 2 - klingq.epoch_ms(submitted_at))
    ELSE greatest(0, klingq.epoch_ms(now()) - klingq.epoch_ms(submitted_at)) END,
  last_error = CASE WHEN $5::jsonb IS NULL THEN last_error
                    ELSE jsonb_build_object('last', $5::jsonb,
                                            'history', coalesce(last_error -> 'history', '[]') || $5::jsonb) END
WHERE remote_id = $1 AND state = 'submitted'
RETURNING id, credit_cost, extract(epoch FROM now() - submitted_at)
