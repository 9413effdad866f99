-- klingq schema, version 1: the job queue, its history, and the wake-up signal.
-- Ops dashboards read these tables; column names are an interface.

CREATE TYPE klingq.job_state AS ENUM
  ('queued', 'dispatching', 'submitted', 'completed', 'failed', 'cancelled');

CREATE TABLE klingq.jobs (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- what to generate
  prompt           text NOT NULL,
  duration         int NOT NULL DEFAULT 5,
  aspect_ratio     text NOT NULL DEFAULT '16:9',
  version          text,                       -- NULL: the API's default model
  mode             text NOT NULL DEFAULT 'standard',
  options          jsonb NOT NULL DEFAULT '{}', -- merged into the API's options
  -- scheduling
  priority         int NOT NULL DEFAULT 0,     -- higher runs first
  run_after        timestamptz NOT NULL DEFAULT now(),
  batch            text,                       -- free label for bulk loads
  idempotency_key  uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
  state            klingq.job_state NOT NULL DEFAULT 'queued',
  attempts         int NOT NULL DEFAULT 0,
  max_attempts     int NOT NULL DEFAULT 8,
  wait_reason      text,                       -- why a queued row is not moving
  -- lease held by the klingqd instance that claimed the row
  lease_owner      text,
  lease_expires_at timestamptz,
  -- results
  remote_id        text,
  url              text,
  credit_cost      int,
  metadata         jsonb,
  last_error       jsonb,
  -- completion tracking (polling fallback)
  next_poll_at     timestamptz,
  polls            int NOT NULL DEFAULT 0,
  created_at       timestamptz NOT NULL DEFAULT now(),
  submitted_at     timestamptz,
  completed_at     timestamptz,
  updated_at       timestamptz NOT NULL DEFAULT now(),

  CONSTRAINT jobs_prompt_not_blank CHECK (btrim(prompt, E' \t\r\n\f' || chr(11)) <> ''),
  CONSTRAINT jobs_prompt_max_2500_chars CHECK (char_length(prompt) <= 2500),
  CONSTRAINT jobs_duration_5_or_10 CHECK (duration IN (5, 10)),
  CONSTRAINT jobs_aspect_ratio_valid CHECK (aspect_ratio IN ('16:9', '9:16', '1:1')),
  CONSTRAINT jobs_version_valid
    CHECK (version IS NULL OR version IN ('1.0', '1.5', '1.6', '2.0', '2.1', '2.1-master')),
  CONSTRAINT jobs_mode_standard_or_professional CHECK (mode IN ('standard', 'professional')),
  CONSTRAINT jobs_options_is_object CHECK (jsonb_typeof(options) = 'object'),
  CONSTRAINT jobs_attempts_not_negative CHECK (attempts >= 0),
  CONSTRAINT jobs_max_attempts_positive CHECK (max_attempts BETWEEN 1 AND 100),
  CONSTRAINT jobs_batch_length CHECK (batch IS NULL OR char_length(batch) BETWEEN 1 AND 200),
  CONSTRAINT jobs_dispatching_has_lease
    CHECK (state <> 'dispatching' OR (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
  CONSTRAINT jobs_submitted_has_remote_id CHECK (state <> 'submitted' OR remote_id IS NOT NULL)
);

-- The claim query reads only runnable rows, in claim order; completed history never
-- enters this index, so claiming costs the same with 1 k or 100 M finished rows.
CREATE INDEX jobs_claimable_idx ON klingq.jobs (priority DESC, run_after, id)
  WHERE state = 'queued';
-- Expired leases of crashed instances.
CREATE INDEX jobs_lease_idx ON klingq.jobs (lease_expires_at) WHERE state = 'dispatching';
-- In-flight jobs: webhook lookups by remote id and the polling schedule.
CREATE UNIQUE INDEX jobs_remote_id_idx ON klingq.jobs (remote_id) WHERE remote_id IS NOT NULL;
CREATE INDEX jobs_poll_idx ON klingq.jobs (next_poll_at) WHERE state = 'submitted';
CREATE INDEX jobs_batch_idx ON klingq.jobs (batch, state) WHERE batch IS NOT NULL;

-- History of every state change, written by trigger so that no writer can forget it.
CREATE TABLE klingq.job_events (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_id     bigint NOT NULL REFERENCES klingq.jobs (id) ON DELETE CASCADE,
  at         timestamptz NOT NULL DEFAULT clock_timestamp(),
  from_state klingq.job_state,
  to_state   klingq.job_state NOT NULL,
  instance   text,
  detail     jsonb
);
CREATE INDEX job_events_job_idx ON klingq.job_events (job_id, at);
CREATE INDEX job_events_at_idx ON klingq.job_events (at);

CREATE FUNCTION klingq.jobs_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END $$;
CREATE TRIGGER jobs_touch BEFORE UPDATE ON klingq.jobs
  FOR EACH ROW EXECUTE FUNCTION klingq.jobs_touch();

CREATE FUNCTION klingq.jobs_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO klingq.job_events (job_id, from_state, to_state, instance, detail)
  VALUES (NEW.id, OLD.state, NEW.state, NEW.lease_owner,
          jsonb_strip_nulls(jsonb_build_object(
            'attempts', NEW.attempts, 'remote_id', NEW.remote_id,
            'error', CASE WHEN NEW.last_error IS DISTINCT FROM OLD.last_error
                          THEN NEW.last_error -> 'last' END,
            'wait_reason', NEW.wait_reason)));
  RETURN NULL;
END $$;
CREATE TRIGGER jobs_record_event AFTER UPDATE OF state ON klingq.jobs
  FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
  EXECUTE FUNCTION klingq.jobs_record_event();

-- Wake the dispatchers once per inserting statement (a COPY of a million rows sends
-- one notification, not a million).
CREATE FUNCTION klingq.jobs_notify_runnable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM inserted WHERE state = 'queued') THEN
    PERFORM pg_notify('klingq_jobs', 'insert');
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER jobs_notify_runnable AFTER INSERT ON klingq.jobs
  REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION klingq.jobs_notify_runnable();
