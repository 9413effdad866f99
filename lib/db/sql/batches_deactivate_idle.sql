-- Batches among $1 (keys, locked by batches_lock in this transaction) without a queued
-- job leave the claim's walk. Its own statement after the lock: its snapshot sees every
-- job queued by a transaction that held the row before us, and one that queues later
-- sets `active` again (the jobs triggers) once we commit.
UPDATE klingq.batches b SET active = false
WHERE b.key = ANY($1::text[]) AND b.active
  AND NOT EXISTS (SELECT 1 FROM klingq.jobs j WHERE coalesce(j.batch, '') = b.key AND j.state = 'queued')
RETURNING b.key
