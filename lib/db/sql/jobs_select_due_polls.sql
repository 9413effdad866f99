-- Submitted jobs whose status poll is due, oldest due first, at most $1, locked.
SELECT id, remote_id, polls FROM klingq.jobs
WHERE state = 'submitted' AND next_poll_at <= now()
ORDER BY next_poll_at LIMIT $1 FOR UPDATE SKIP LOCKED
