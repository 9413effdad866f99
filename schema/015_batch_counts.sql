-- Per-batch figures without scanning the jobs (issue 16: the console's batch list live
-- within 2 s at a million rows). Like klingq.job_counts (005), the tables below hold net
-- changes that statement triggers append and that readers sum; nothing is ever updated
-- in place, so writers never wait on each other. klingqd's heartbeat folds them.
-- Before this, the console's batch list grouped the whole jobs table (1.7 s at 1 M
-- rows), its last-hour figures scanned job_events (0.7 s and 0.2 s), and every claim
-- with a budgeted batch summed that batch's rows.

-- Jobs per batch, settled state (queued, completed, failed, cancelled) and kind (mode,
-- duration: what the price depends on), with the credits recorded (credit_cost) and how
-- many rows have none (their cost is the price table's, which readers apply: the table
-- holds no prices). The jobs in flight (dispatching, submitted) are not counted here:
-- readers count them in klingq.jobs, where partial indexes hold just them and the
-- parallel limit keeps them few. So a job's way through the API appends two rows (out of
-- queued, into its end), not six, and the submit, which moves rows between the two
-- in-flight states, appends none.
CREATE TABLE klingq.batch_counts (
  key        text NOT NULL,  -- coalesce(batch, ''): '' is the unlabelled batch
  state      klingq.job_state NOT NULL,
  mode       text NOT NULL,
  duration   int NOT NULL,
  n          bigint NOT NULL,
  credits    bigint NOT NULL,
  uncosted   bigint NOT NULL,
  changed_at timestamptz NOT NULL DEFAULT now()
);
-- No index: every statement that moves jobs appends a row per batch and state it
-- touched (200 for a claim of 100 over 100 batches), and an index would add a third to
-- the write-ahead log those appends cost (bench/triggers). Readers scan the table, which
-- the fold keeps to a row per group plus a few seconds of changes.
COMMENT ON TABLE klingq.batch_counts IS
  'Net changes of the jobs per (batch key, state, mode, duration) for the settled states '
  '(queued, completed, failed, cancelled; count dispatching and submitted in klingq.jobs): '
  'sum(n) is the count, sum(credits) the recorded credit_cost, sum(uncosted) the rows '
  'without one; key '''' = unlabelled. Maintained by triggers on klingq.jobs, folded by klingqd.';

-- State changes per minute, new state and error class, with the credits of the submits:
-- the console's sparkline, 429s, 402s, failures by class and burn rate. Counted by the
-- update trigger that writes job_events, from the same rows; the events that record no
-- change of state (a download, a stuck flag) are not counted, so they no longer pass
-- for completions or submits. Deleting a job keeps what its events counted: the 429s
-- and credits of the last hour happened all the same. klingqd's fold keeps two hours.
CREATE TABLE klingq.event_minutes (
  minute      timestamptz NOT NULL,
  to_state    klingq.job_state NOT NULL,
  error_class text,
  n           bigint NOT NULL,
  credits     bigint NOT NULL
);
CREATE INDEX event_minutes_minute_idx ON klingq.event_minutes (minute);
COMMENT ON TABLE klingq.event_minutes IS
  'State changes of klingq.jobs (the job_events that change state) per minute, to_state '
  'and error class, with the credits of the submits; maintained by the update trigger on '
  'klingq.jobs, folded by klingqd, which keeps two hours.';

-- Both are filled while this migration holds its locks (CREATE TRIGGER takes them too),
-- so no writer slips between the count and the triggers.
LOCK TABLE klingq.jobs, klingq.job_events IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO klingq.batch_counts (key, state, mode, duration, n, credits, uncosted, changed_at)
SELECT coalesce(batch, ''), state, mode, duration, count(*), coalesce(sum(credit_cost), 0),
       count(*) FILTER (WHERE credit_cost IS NULL), max(updated_at)
FROM klingq.jobs WHERE state IN ('queued', 'completed', 'failed', 'cancelled') GROUP BY 1, 2, 3, 4;
INSERT INTO klingq.event_minutes (minute, to_state, error_class, n, credits)
SELECT date_trunc('minute', e.at), e.to_state, e.detail -> 'error' ->> 'class', count(*),
       coalesce(sum(j.credit_cost) FILTER (WHERE e.to_state = 'submitted'), 0)
FROM klingq.job_events e LEFT JOIN klingq.jobs j ON j.id = e.job_id
WHERE e.at >= now() - interval '2 hours' AND e.from_state IS DISTINCT FROM e.to_state
GROUP BY 1, 2, 3;

-- The insert trigger of 012, now also counting per batch.
CREATE OR REPLACE FUNCTION klingq.jobs_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO klingq.job_counts (state, n) SELECT state, count(*) FROM inserted GROUP BY state;
  INSERT INTO klingq.batch_counts (key, state, mode, duration, n, credits, uncosted)
  SELECT coalesce(batch, ''), state, mode, duration, count(*), coalesce(sum(credit_cost), 0),
         count(*) FILTER (WHERE credit_cost IS NULL)
  FROM inserted WHERE state IN ('queued', 'completed', 'failed', 'cancelled') GROUP BY 1, 2, 3, 4;
  INSERT INTO klingq.batches AS b (batch)
  SELECT DISTINCT batch FROM inserted WHERE state = 'queued' ORDER BY 1 NULLS FIRST
  ON CONFLICT (key) DO UPDATE SET active = true WHERE NOT b.active;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION klingq.jobs_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO klingq.job_counts (state, n) SELECT state, -count(*) FROM deleted GROUP BY state;
  INSERT INTO klingq.batch_counts (key, state, mode, duration, n, credits, uncosted)
  SELECT coalesce(batch, ''), state, mode, duration, -count(*), -coalesce(sum(credit_cost), 0),
         -count(*) FILTER (WHERE credit_cost IS NULL)
  FROM deleted WHERE state IN ('queued', 'completed', 'failed', 'cancelled') GROUP BY 1, 2, 3, 4;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION klingq.jobs_count_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM klingq.job_counts;
  DELETE FROM klingq.batch_counts;
  TRUNCATE klingq.job_events;
  DELETE FROM klingq.event_minutes;
  RETURN NULL;
END $$;

-- The update trigger of 012. Three changes: the submit's event carries its cost
-- (detail.credit_cost, shown on the job's page); the moves are counted per minute in
-- klingq.event_minutes; and every statement appends its net change per batch in the
-- settled states: each old row subtracted, each new row added, the groups that cancel
-- dropped (no join needed, and updates that move nothing, such as a poll's polled_at or
-- a submit between the two in-flight states, add nothing).
CREATE OR REPLACE FUNCTION klingq.jobs_record_events() RETURNS trigger LANGUAGE plpgsql
  SET enable_nestloop = off AS $$
BEGIN
  WITH pairs AS (
    SELECT n.id, o.state AS from_state, n.state AS to_state, n.lease_owner, n.batch,
           o.batch IS DISTINCT FROM n.batch AS relabelled,
           jsonb_strip_nulls(jsonb_build_object(
             'attempts', n.attempts, 'remote_id', n.remote_id,
             'error', CASE WHEN n.last_error IS DISTINCT FROM o.last_error THEN n.last_error -> 'last' END,
             'wait_reason', n.wait_reason,
             'credit_cost', CASE WHEN n.state = 'submitted' THEN n.credit_cost END)) AS detail
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE o.state IS DISTINCT FROM n.state OR (n.state = 'queued' AND o.batch IS DISTINCT FROM n.batch)),
  moved AS (SELECT * FROM pairs WHERE from_state IS DISTINCT FROM to_state),
  events AS (
    INSERT INTO klingq.job_events (job_id, from_state, to_state, instance, detail)
    SELECT id, from_state, to_state, lease_owner, detail FROM moved ORDER BY id),
  minutes AS (
    INSERT INTO klingq.event_minutes (minute, to_state, error_class, n, credits)
    SELECT date_trunc('minute', now()), to_state, detail -> 'error' ->> 'class', count(*),
           coalesce(sum((detail ->> 'credit_cost')::bigint), 0)
    FROM moved GROUP BY 2, 3),
  woken AS (
    INSERT INTO klingq.batches AS b (batch)
    SELECT DISTINCT batch FROM pairs WHERE to_state = 'queued' ORDER BY 1 NULLS FIRST
    ON CONFLICT (key) DO UPDATE SET active = true WHERE NOT b.active),
  per_batch AS (
    INSERT INTO klingq.batch_counts (key, state, mode, duration, n, credits, uncosted)
    SELECT key, state, mode, duration, sum(n), sum(credits), sum(uncosted)
    FROM (SELECT coalesce(batch, '') AS key, state, mode, duration, -1 AS n,
                 -coalesce(credit_cost, 0) AS credits, -(credit_cost IS NULL)::int AS uncosted
          FROM old_rows WHERE state IN ('queued', 'completed', 'failed', 'cancelled')
          UNION ALL
          SELECT coalesce(batch, ''), state, mode, duration, 1,
                 coalesce(credit_cost, 0), (credit_cost IS NULL)::int
          FROM new_rows WHERE state IN ('queued', 'completed', 'failed', 'cancelled')) d
    GROUP BY 1, 2, 3, 4
    HAVING sum(n) <> 0 OR sum(credits) <> 0 OR sum(uncosted) <> 0)
  INSERT INTO klingq.job_counts (state, n)
  SELECT state, sum(d) FROM (SELECT from_state AS state, -1 AS d FROM moved
                             UNION ALL SELECT to_state, 1 FROM moved) m
  GROUP BY state HAVING sum(d) <> 0;
  RETURN NULL;
END $$;
