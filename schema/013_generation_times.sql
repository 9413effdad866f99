-- How long generation takes, learned from the account's own history, so that status polls
-- go where a job is likely done (lib/dispatcher/poll_schedule.hpp) and a missing webhook
-- is known to be late. Kept here, not in a process, so a restart or another instance knows
-- it at once.
--
--   jobs.generation_ms     a completed job's generation time: submitted_at to the webhook,
--                          or, when a poll found it done, to the middle of the interval
--                          between the poll that still saw it processing and the one that
--                          saw it done (its true end lies somewhere in there).
--   jobs.polled_at         when the latest status poll of the job was sent,
--   jobs.prior_polled_at   and the one before it.
--   generation_times       robust quantiles of the recent generation_ms per mode, duration
--                          and version ('' = the API's default model), refreshed by every
--                          klingqd's poller from the last hour's completions (the last 500 per
--                          kind); a kind with no recent completion keeps its last figures.
--   account.capacity_held_at  when a claim last found runnable rows held by the parallel
--                          limit, the daily cap or credits (cleared by the next claim that is
--                          not): polls may then use the request budget submits cannot.
ALTER TABLE klingq.jobs
  ADD COLUMN generation_ms bigint,
  ADD COLUMN polled_at timestamptz,
  ADD COLUMN prior_polled_at timestamptz;

CREATE INDEX jobs_generation_idx ON klingq.jobs (completed_at)
  WHERE state = 'completed' AND generation_ms IS NOT NULL;

CREATE TABLE klingq.generation_times (
  mode         text NOT NULL,
  duration     int NOT NULL,
  version      text NOT NULL,
  samples      int NOT NULL CHECK (samples > 0),
  p10_ms       bigint NOT NULL,
  p25_ms       bigint NOT NULL,
  p50_ms       bigint NOT NULL,
  p75_ms       bigint NOT NULL,
  p90_ms       bigint NOT NULL,
  p99_ms       bigint NOT NULL,
  refreshed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (mode, duration, version)
);
COMMENT ON TABLE klingq.generation_times IS
  'Quantiles of generation time (submit to done) per mode, duration and version, from the '
  'last hour of completions; what klingqd schedules status polls by.';

ALTER TABLE klingq.account ADD COLUMN capacity_held_at timestamptz;
