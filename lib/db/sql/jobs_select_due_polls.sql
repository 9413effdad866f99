-- Submitted jobs whose status poll is due, oldest due first, at most $1, locked, with what
-- their next poll's time depends on: their kind, when they were submitted, and whether a
-- webhook is expected.
SELECT id, remote_id, polls, mode, duration, coalesce(version, ''),
       klingq.epoch_ms(submitted_at), coalesce(submit_webhook_url, '') <> ''
FROM klingq.jobs
WHERE state = 'submitted' AND next_poll_at <= now()
ORDER BY next_poll_at LIMIT $1 FOR UPDATE SKIP LOCKED
