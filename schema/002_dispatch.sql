-- klingq schema, version 2: the state every klingqd instance shares through the
-- database, so that several hosts on one account respect the account's limits together.

-- One row per API account. Claims lock this row (SELECT ... FOR UPDATE), read the
-- limiter state, take tokens for exactly the rows they claim, and commit: the limiter
-- is authoritative here, not in any process. Limits use 0 for "unlimited".
CREATE TABLE klingq.account (
  name                  text PRIMARY KEY DEFAULT 'default',
  -- request window: X-RateLimit-Limit / -Remaining / -Reset
  rpm_limit             bigint NOT NULL DEFAULT 10,
  rpm_remaining         bigint,          -- estimate for the current window; NULL = unknown
  rpm_reset_at          timestamptz,     -- end of the current window; NULL = unknown
  rpm_next_at           timestamptz NOT NULL DEFAULT '-infinity',  -- pacing: next request
  poll_next_at          timestamptz NOT NULL DEFAULT '-infinity',  -- pacing of status polls
  rpm_paused_until      timestamptz,     -- set by a 429 naming this window
  -- jobs per day: X-RateLimit-*-Day
  day_limit             bigint NOT NULL DEFAULT 100,
  day_remaining         bigint,          -- as the API last reported it; NULL = unknown
  day_used              bigint NOT NULL DEFAULT 0,  -- submits since day_reset_at began
  day_reset_at          timestamptz,     -- next daily reset
  day_paused_until      timestamptz,
  -- parallel jobs: X-RateLimit-*-Parallel (in flight = rows dispatching or submitted)
  parallel_limit        bigint NOT NULL DEFAULT 1,
  parallel_paused_until timestamptz,
  limits_source         text NOT NULL DEFAULT 'plan',  -- 'plan' until headers arrive
  -- credits
  balance               bigint,          -- last known balance; NULL = never queried
  balance_at            timestamptz,
  -- a 401 stops every instance until an operator fixes the key
  halted_reason         text,
  halted_at             timestamptz,
  -- klingq pause / resume: honoured by every instance
  paused                boolean NOT NULL DEFAULT false,
  paused_reason         text,
  updated_at            timestamptz NOT NULL DEFAULT now()
);

-- Live klingqd processes, for dashboards and for dividing per-instance work.
CREATE TABLE klingq.instances (
  id           text PRIMARY KEY,
  host         text NOT NULL,
  pid          int NOT NULL,
  version      text NOT NULL,
  started_at   timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now(),
  status       jsonb NOT NULL DEFAULT '{}'
);

-- Optional spending cap per batch label: jobs of a batch whose budget is spent wait
-- in 'queued' with wait_reason set, they are not failed.
CREATE TABLE klingq.batch_budgets (
  batch  text PRIMARY KEY,
  budget bigint NOT NULL CHECK (budget >= 0)
);

-- A webhook that arrives before its submit was recorded (the API can finish a job
-- before our UPDATE commits) waits here; recording the submit applies it.
CREATE TABLE klingq.webhook_inbox (
  remote_id   text PRIMARY KEY,
  status      text NOT NULL,
  url         text,
  metadata    jsonb,
  error       text,
  received_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON COLUMN klingq.jobs.last_error IS
  '{"last": {"class", "status", "code", "message", "at", "attempt"}, "history": [...]}';

-- Timestamps cross the C++ boundary as epoch milliseconds; NULL and ±infinity as NULL.
CREATE FUNCTION klingq.epoch_ms(t timestamptz) RETURNS bigint
  LANGUAGE sql IMMUTABLE AS $$ SELECT CASE WHEN isfinite(t) THEN (extract(epoch FROM t) * 1000)::bigint END $$;
CREATE FUNCTION klingq.from_epoch_ms(ms bigint) RETURNS timestamptz
  LANGUAGE sql IMMUTABLE AS $$ SELECT to_timestamp(ms / 1000.0) $$;
