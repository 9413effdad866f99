-- Moves the chosen rows ($1) to dispatching under this instance's lease ($2, $3 seconds).
-- The first claim pins the webhookUrl ($4) that every resubmit of the row repeats.
UPDATE klingq.jobs SET state = 'dispatching', lease_owner = $2,
  lease_expires_at = now() + make_interval(secs => $3), wait_reason = NULL,
  submit_webhook_url = coalesce(submit_webhook_url, $4), day_counted = true, updated_at = now()
WHERE id = ANY($1::bigint[])
RETURNING id, prompt, duration, aspect_ratio, version, mode, options::text,
          idempotency_key::text, attempts, max_attempts, klingq.epoch_ms(created_at),
          submit_webhook_url
