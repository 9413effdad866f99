-- Fair shares between batches (issue 17): one row of settings and share state per batch
-- label, klingq.batch_budgets folded in (its budgets are kept; a view of the same name
-- keeps scripts that write it working).
--
-- Settings (klingq batch set|pause|resume, or plain SQL):
--   weight        the batch's share of the account among the runnable batches of the same
--                 priority: a batch of weight 3 gets three submits for one of a weight-1 batch
--   max_parallel  at most this many of its jobs dispatching or submitted at once (NULL: no cap)
--   daily_cap     at most this many of its submits per provider day (NULL: no cap)
--   budget        at most this many credits committed (NULL: no cap; was batch_budgets)
--   paused        its queued jobs wait; the others get its share
-- Share state, written by the claim under the account lock (every instance shares it):
--   pass          virtual time of the batch's next submit; the claim serves the lowest
--                 (deficit round-robin by stride: each submit adds 1/weight)
--   active        the batch has queued jobs (as far as the claim knows): set by the
--                 triggers below when rows enter 'queued', cleared by the claim
--   day_count     submits taken in the provider day that ends at day_key (epoch ms)
-- The unlabelled jobs (batch NULL) are one batch too: the row whose batch is NULL.
CREATE TABLE klingq.batches (
  batch         text CONSTRAINT batches_batch_length CHECK (batch IS NULL OR char_length(batch) BETWEEN 1 AND 200),
  key           text GENERATED ALWAYS AS (coalesce(batch, '')) STORED NOT NULL,
  weight        int NOT NULL DEFAULT 1 CONSTRAINT batches_weight_1_to_10000 CHECK (weight BETWEEN 1 AND 10000),
  max_parallel  int CONSTRAINT batches_max_parallel_positive CHECK (max_parallel >= 1),
  daily_cap     int CONSTRAINT batches_daily_cap_not_negative CHECK (daily_cap >= 0),
  budget        bigint CONSTRAINT batches_budget_not_negative CHECK (budget >= 0),
  paused        boolean NOT NULL DEFAULT false,
  paused_reason text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  pass          double precision NOT NULL DEFAULT 0,
  active        boolean NOT NULL DEFAULT true,
  day_count     int NOT NULL DEFAULT 0,
  day_key       bigint,
  -- A budget counts its batch's jobs through jobs_batch_idx, which has no unlabelled rows.
  CONSTRAINT batches_budget_labelled CHECK (budget IS NULL OR batch IS NOT NULL)
);
-- coalesce(batch, ''): a job's batch label is never '' (jobs_batch_length), so '' names
-- the unlabelled batch in keys and indexes.
CREATE UNIQUE INDEX batches_key_idx ON klingq.batches (key);
-- The claim walks the runnable batches in pass order and stops at the first few.
CREATE INDEX batches_pass_idx ON klingq.batches (pass, key) WHERE active AND NOT paused;
-- Every account lock asks whether any batch has a budget: an index lookup, not a scan.
CREATE INDEX batches_budget_idx ON klingq.batches (key) WHERE budget IS NOT NULL;
COMMENT ON TABLE klingq.batches IS
  'Per-batch settings (weight, max_parallel, daily_cap, budget, paused) and the claim''s '
  'fair-share state (pass, active, day_count). batch NULL = the unlabelled jobs.';

-- The global virtual time of the share scheduler: the pass of the last batch served. A
-- batch that comes back (new, resumed, refilled, uncapped) starts no earlier than this,
-- so it cannot spend a share it did not use while away.
CREATE TABLE klingq.batch_share_clock (
  one   boolean PRIMARY KEY DEFAULT true CHECK (one),
  vtime double precision NOT NULL DEFAULT 0
);
INSERT INTO klingq.batch_share_clock DEFAULT VALUES;

-- A batch's next runnable rows, straight from the index: the claim takes the first n of
-- each batch it chose.
CREATE INDEX jobs_batch_queue_idx ON klingq.jobs ((coalesce(batch, '')), priority DESC, run_after, id)
  WHERE state = 'queued';

LOCK TABLE klingq.jobs IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO klingq.batches (batch, budget) SELECT batch, budget FROM klingq.batch_budgets;
INSERT INTO klingq.batches (batch) VALUES (NULL) ON CONFLICT (key) DO NOTHING;
INSERT INTO klingq.batches (batch)
  SELECT DISTINCT batch FROM klingq.jobs WHERE state = 'queued' AND batch IS NOT NULL
  ON CONFLICT (key) DO NOTHING;
UPDATE klingq.batches b SET active = EXISTS (SELECT 1 FROM klingq.jobs j
                                             WHERE coalesce(j.batch, '') = b.key AND j.state = 'queued');
DROP TABLE klingq.batch_budgets;

-- The old table's interface, for scripts that set budgets with SQL: reads show the
-- budgeted batches, writes set or clear klingq.batches.budget.
CREATE VIEW klingq.batch_budgets AS
  SELECT batch, budget FROM klingq.batches WHERE batch IS NOT NULL AND budget IS NOT NULL;
CREATE FUNCTION klingq.batch_budgets_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    UPDATE klingq.batches SET budget = NULL, updated_at = now() WHERE batch = OLD.batch;
    RETURN OLD;
  END IF;
  IF NEW.budget IS NULL OR NEW.budget < 0 THEN
    RAISE EXCEPTION 'klingq.batch_budgets.budget must be a number >= 0'
      USING ERRCODE = 'check_violation';
  END IF;
  IF TG_OP = 'UPDATE' AND NEW.batch IS DISTINCT FROM OLD.batch THEN
    UPDATE klingq.batches SET budget = NULL, updated_at = now() WHERE batch = OLD.batch;
  END IF;
  INSERT INTO klingq.batches (batch, budget) VALUES (NEW.batch, NEW.budget)
  ON CONFLICT (key) DO UPDATE SET budget = EXCLUDED.budget, updated_at = now();
  RETURN NEW;
END $$;
CREATE TRIGGER batch_budgets_write INSTEAD OF INSERT OR UPDATE OR DELETE ON klingq.batch_budgets
  FOR EACH ROW EXECUTE FUNCTION klingq.batch_budgets_write();

-- Rows entering 'queued' make their batch known and active. ON CONFLICT DO UPDATE locks
-- the batch's row even when it is active already (the WHERE only skips the write): the
-- claim clears `active` only while it holds that lock and after it, so a batch cannot be
-- cleared while a job of it is being queued. Rows are locked in key order ('' = NULL
-- first, then the labels: the order of the claim's batches_lock), so the two never
-- deadlock.
CREATE OR REPLACE FUNCTION klingq.jobs_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO klingq.job_counts (state, n) SELECT state, count(*) FROM inserted GROUP BY state;
  INSERT INTO klingq.batches AS b (batch)
  SELECT DISTINCT batch FROM inserted WHERE state = 'queued' ORDER BY 1 NULLS FIRST
  ON CONFLICT (key) DO UPDATE SET active = true WHERE NOT b.active;
  RETURN NULL;
END $$;

-- The update trigger of 005/009, now also waking the batches of rows that went back to
-- 'queued' (a retry, a requeue, an expired lease) or moved to another batch while queued.
CREATE OR REPLACE FUNCTION klingq.jobs_record_events() RETURNS trigger LANGUAGE plpgsql
  SET enable_nestloop = off AS $$
BEGIN
  WITH pairs AS (
    SELECT n.id, o.state AS from_state, n.state AS to_state, n.lease_owner, n.batch,
           o.batch IS DISTINCT FROM n.batch AS relabelled,
           jsonb_strip_nulls(jsonb_build_object(
             'attempts', n.attempts, 'remote_id', n.remote_id,
             'error', CASE WHEN n.last_error IS DISTINCT FROM o.last_error THEN n.last_error -> 'last' END,
             'wait_reason', n.wait_reason)) AS detail
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE o.state IS DISTINCT FROM n.state OR (n.state = 'queued' AND o.batch IS DISTINCT FROM n.batch)),
  moved AS (SELECT * FROM pairs WHERE from_state IS DISTINCT FROM to_state),
  events AS (
    INSERT INTO klingq.job_events (job_id, from_state, to_state, instance, detail)
    SELECT id, from_state, to_state, lease_owner, detail FROM moved ORDER BY id),
  woken AS (
    INSERT INTO klingq.batches AS b (batch)
    SELECT DISTINCT batch FROM pairs WHERE to_state = 'queued' ORDER BY 1 NULLS FIRST
    ON CONFLICT (key) DO UPDATE SET active = true WHERE NOT b.active)
  INSERT INTO klingq.job_counts (state, n)
  SELECT state, sum(d) FROM (SELECT from_state AS state, -1 AS d FROM moved
                             UNION ALL SELECT to_state, 1 FROM moved) m
  GROUP BY state HAVING sum(d) <> 0;
  RETURN NULL;
END $$;

-- Dashboards: each batch's weight and share next to its jobs (columns added at the end,
-- as the views' interface promises), and each batch's share of the last hour's submits.
-- share: the batch's weight over the weights of the batches with queued jobs (NULL while
-- it has none queued, or is paused).
CREATE OR REPLACE VIEW klingq.queue_summary AS
WITH runnable AS (
  SELECT key, weight FROM klingq.batches WHERE active AND NOT paused
)
SELECT j.state::text                           AS state,
       j.batch                                 AS batch,
       count(*)                                AS jobs,
       coalesce(sum(j.credit_cost), 0)::bigint AS credit_cost,
       min(j.created_at)                       AS oldest_created_at,
       count(*) FILTER (WHERE j.output_path IS NOT NULL)    AS outputs_downloaded,
       count(*) FILTER (WHERE j.output_next_at IS NOT NULL) AS outputs_pending,
       count(*) FILTER (WHERE j.output_path IS NULL AND j.output_next_at IS NULL
                          AND (j.output_error ->> 'gave_up')::boolean) AS outputs_failed,
       coalesce(b.weight, 1)                   AS weight,
       (SELECT r.weight::float8 / nullif((SELECT sum(weight) FROM runnable), 0)
        FROM runnable r WHERE r.key = coalesce(j.batch, ''))                           AS share
FROM klingq.jobs j
LEFT JOIN klingq.batches b ON b.key = coalesce(j.batch, '')
GROUP BY j.state, j.batch, b.weight;
COMMENT ON VIEW klingq.queue_summary IS
  'Jobs by state and batch (batch NULL = unlabelled): jobs, recorded credit_cost, '
  'oldest created_at, with outputs.download the videos downloaded, still pending and '
  'given up (output_error), the batch''s weight and its share (weight over the weights '
  'of the unpaused batches with queued jobs; NULL when it has none). Only combinations '
  'that exist are listed. Reads the whole jobs table.';

CREATE VIEW klingq.batch_submit_share AS
WITH submits AS (
  SELECT j.batch, count(*) AS submits
  FROM klingq.job_events e
  JOIN klingq.jobs j ON j.id = e.job_id
  WHERE e.to_state = 'submitted' AND e.at >= now() - interval '1 hour'
  GROUP BY j.batch
)
SELECT s.batch                                                        AS batch,
       s.submits                                                      AS submits,
       s.submits::float8 / sum(s.submits) OVER ()                     AS share,
       coalesce(b.weight, 1)                                          AS weight,
       coalesce(b.paused, false)                                      AS paused
FROM submits s
LEFT JOIN klingq.batches b ON b.key = coalesce(s.batch, '');
COMMENT ON VIEW klingq.batch_submit_share IS
  'Each batch''s submits over the last hour and its share of them (batch NULL = '
  'unlabelled), with its weight: what fairness the account actually gave.';
