-- klingq schema, version 6: downloading finished videos (outputs.download).
--
-- A job that completes while outputs.download is on gets output_next_at = now() in the
-- same transaction that records its completion, so a crash between the two loses
-- nothing. Every instance with downloads on claims due rows (output_next_at <= now())
-- with FOR UPDATE SKIP LOCKED and pushes output_next_at past the attempt's deadline:
-- that is the claim's lease, so a killed instance's download is retried by anyone once
-- it expires. output_next_at is NULL again once the file is in place (output_path) or
-- the last attempt failed (output_error.gave_up), so the partial index below holds only
-- pending downloads, however long the history of completed jobs grows.
--
-- Jobs completed before downloads were turned on are not fetched retroactively; to
-- fetch them: UPDATE klingq.jobs SET output_next_at = now()
--             WHERE state = 'completed' AND url IS NOT NULL AND output_path IS NULL;
ALTER TABLE klingq.jobs
  ADD COLUMN output_path     text,            -- outputs.dir/<id>.mp4 once downloaded
  ADD COLUMN output_bytes    bigint,          -- its size
  ADD COLUMN output_attempts int NOT NULL DEFAULT 0,  -- download attempts started
  ADD COLUMN output_next_at  timestamptz,     -- pending: next attempt or end of the claim
  ADD COLUMN output_owner    text,            -- instance running the current attempt
  ADD COLUMN output_error    jsonb,           -- {"last": {...}, "history": [...], "gave_up": bool}
  ADD CONSTRAINT jobs_output_attempts_not_negative CHECK (output_attempts >= 0);

COMMENT ON COLUMN klingq.jobs.output_error IS
  '{"last": {"class", "message", "status", "attempt", "at"}, "history": [...], "gave_up": true|false}';

CREATE INDEX jobs_output_pending_idx ON klingq.jobs (output_next_at)
  WHERE output_next_at IS NOT NULL;

-- queue_summary gains the download columns (views only ever add columns at the end).
CREATE OR REPLACE VIEW klingq.queue_summary AS
SELECT j.state::text                           AS state,
       j.batch                                 AS batch,
       count(*)                                AS jobs,
       coalesce(sum(j.credit_cost), 0)::bigint AS credit_cost,
       min(j.created_at)                       AS oldest_created_at,
       count(*) FILTER (WHERE j.output_path IS NOT NULL)    AS outputs_downloaded,
       count(*) FILTER (WHERE j.output_next_at IS NOT NULL) AS outputs_pending,
       count(*) FILTER (WHERE j.output_path IS NULL AND j.output_next_at IS NULL
                          AND (j.output_error ->> 'gave_up')::boolean) AS outputs_failed
FROM klingq.jobs j
GROUP BY j.state, j.batch;
COMMENT ON VIEW klingq.queue_summary IS
  'Jobs by state and batch (batch NULL = unlabelled): jobs, recorded credit_cost, '
  'oldest created_at, and with outputs.download the videos downloaded, still pending, '
  'and given up (output_error). Only combinations that exist are listed. Reads the whole '
  'jobs table.';
