-- The webhookUrl a job's submits carry, pinned by the first claim of the row. The API
-- takes a repeat of an Idempotency-Key only with the same request body (else 409): when
-- an instance dies after the API accepted a job, the instance that resubmits the row
-- must send the dead one's webhookUrl, not its own, or the paid job is lost to a 409.
-- '' = no webhook was asked for. NULL until the row is first claimed.
ALTER TABLE klingq.jobs ADD COLUMN submit_webhook_url text;
COMMENT ON COLUMN klingq.jobs.submit_webhook_url IS
  'webhookUrl of every submit of this row (pinned by its first claim; same Idempotency-Key, same body)';
