-- Who steered the queue by hand, and why: one row per operator action, from the console
-- (lib/console) and from the CLI (lib/operate carries out both). A job's own state
-- changes stay in klingq.job_events; this table says who asked for them.
--   actor    "console:operator#2" (the line of console.operator_token_file whose token
--            was shown; never the token) or "cli:USER@HOST"
--   action   pause | resume | retry | cancel | retry_failed | batch_cancel | ...
--   job_id   the job acted on (NULL for account and batch actions); an audit record, so
--            deleting the job leaves it
--   batch    the batch acted on (NULL otherwise)
--   reason   what the operator typed, if anything
--   detail   what it did: {"count": N, "ids": [...]} and the like
CREATE TABLE klingq.operator_events (
  id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at      timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor   text NOT NULL,
  action  text NOT NULL,
  job_id  bigint,  -- no foreign key: the record outlives the job (and TRUNCATE jobs works)
  batch   text,
  reason  text,
  detail  jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX operator_events_job_idx ON klingq.operator_events (job_id, at) WHERE job_id IS NOT NULL;
CREATE INDEX operator_events_at_idx ON klingq.operator_events (at);

-- The console's job list filters by state and pages by id, newest first. The states a
-- job ends in are otherwise reachable only through the primary key, which at a million
-- rows reads the whole table to find a handful of failed jobs. Only rows that have
-- ended are in it (the hot queued/dispatching/submitted updates never touch it).
CREATE INDEX jobs_ended_idx ON klingq.jobs (state, id DESC)
  WHERE state IN ('completed', 'failed', 'cancelled');
