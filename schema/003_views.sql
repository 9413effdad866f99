-- klingq schema, version 3: views for dashboards and `klingq status/limits`.
-- These views are an interface: columns are only ever added, never renamed or removed,
-- so that dashboards (dashboards/klingq.json) and scripts keep working across releases.
-- Times are timestamptz; durations are seconds (double precision); counts are bigint.

CREATE VIEW klingq.queue_summary AS
SELECT j.state::text                           AS state,
       j.batch                                 AS batch,
       count(*)                                AS jobs,
       coalesce(sum(j.credit_cost), 0)::bigint AS credit_cost,
       min(j.created_at)                       AS oldest_created_at
FROM klingq.jobs j
GROUP BY j.state, j.batch;
COMMENT ON VIEW klingq.queue_summary IS
  'Jobs by state and batch (batch NULL = unlabelled): jobs, recorded credit_cost, '
  'oldest created_at. Only combinations that exist are listed. Reads the whole jobs table.';

CREATE VIEW klingq.throughput_per_minute AS
WITH minutes AS (
  SELECT generate_series(date_trunc('minute', now() - interval '24 hours'),
                         date_trunc('minute', now()), interval '1 minute') AS minute
), counts AS (
  SELECT date_trunc('minute', e.at)                      AS minute,
         count(*) FILTER (WHERE e.to_state = 'submitted') AS submitted,
         count(*) FILTER (WHERE e.to_state = 'completed') AS completed,
         count(*) FILTER (WHERE e.to_state = 'failed')    AS failed
  FROM klingq.job_events e
  WHERE e.at >= date_trunc('minute', now() - interval '24 hours')
  GROUP BY 1
)
SELECT m.minute                      AS minute,
       coalesce(c.submitted, 0)      AS submitted,
       coalesce(c.completed, 0)      AS completed,
       coalesce(c.failed, 0)         AS failed
FROM minutes m
LEFT JOIN counts c USING (minute);
COMMENT ON VIEW klingq.throughput_per_minute IS
  'One row per minute of the last 24 hours (zeros included): jobs that became '
  'submitted, completed and failed in that minute, from job_events.';

CREATE VIEW klingq.latency_percentiles AS
WITH periods(period, span) AS (
  VALUES ('1 hour', interval '1 hour'), ('1 day', interval '1 day')
), stages(stage) AS (
  VALUES ('insert_to_submit'), ('submit_to_complete')
), samples AS (
  SELECT 'insert_to_submit'::text AS stage, e.at,
         extract(epoch FROM e.at - j.created_at)::float8 AS seconds
  FROM klingq.job_events e
  JOIN klingq.jobs j ON j.id = e.job_id
  WHERE e.to_state = 'submitted' AND e.at >= now() - interval '1 day'
  UNION ALL
  SELECT 'submit_to_complete', e.at,
         extract(epoch FROM e.at - j.submitted_at)::float8
  FROM klingq.job_events e
  JOIN klingq.jobs j ON j.id = e.job_id
  WHERE e.to_state = 'completed' AND e.at >= now() - interval '1 day'
    AND j.submitted_at IS NOT NULL
)
SELECT p.period                                                       AS period,
       s.stage                                                        AS stage,
       count(x.seconds)                                               AS samples,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY x.seconds)  AS p50_seconds,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY x.seconds)  AS p90_seconds,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY x.seconds) AS p99_seconds
FROM periods p
CROSS JOIN stages s
LEFT JOIN samples x ON x.stage = s.stage AND x.at >= now() - p.span
GROUP BY p.period, p.span, s.stage;
COMMENT ON VIEW klingq.latency_percentiles IS
  'Four rows: period (''1 hour'' | ''1 day'') x stage (''insert_to_submit'': created_at to '
  'the submitted event; ''submit_to_complete'': submitted_at to the completed event), '
  'with samples and p50/p90/p99 in seconds (NULL without samples).';

CREATE VIEW klingq.credit_spend AS
SELECT date_trunc('day', j.submitted_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS day,
       j.batch                                 AS batch,
       count(*)                                AS jobs,
       coalesce(sum(j.credit_cost), 0)::bigint AS credits
FROM klingq.jobs j
WHERE j.state IN ('submitted', 'completed') AND j.submitted_at IS NOT NULL
GROUP BY 1, 2;
COMMENT ON VIEW klingq.credit_spend IS
  'Credits charged per UTC day (day = its start, as timestamptz) and batch: the API''s '
  'creditCost of jobs submitted or completed. Failed jobs are assumed refunded.';

CREATE VIEW klingq.limit_state AS
SELECT a.name                  AS account,
       a.limits_source         AS limits_source,
       a.rpm_limit             AS rpm_limit,
       a.rpm_remaining         AS rpm_remaining,
       a.rpm_reset_at          AS rpm_reset_at,
       a.rpm_paused_until      AS rpm_paused_until,
       a.day_limit             AS day_limit,
       a.day_used              AS day_used,
       a.day_remaining         AS day_remaining,
       a.day_reset_at          AS day_reset_at,
       a.day_paused_until      AS day_paused_until,
       a.parallel_limit        AS parallel_limit,
       f.in_flight             AS in_flight,
       a.parallel_paused_until AS parallel_paused_until,
       a.balance               AS balance,
       a.balance_at            AS balance_at,
       a.halted_reason         AS halted_reason,
       a.halted_at             AS halted_at,
       a.paused                AS paused,
       a.paused_reason         AS paused_reason,
       a.updated_at            AS updated_at
FROM klingq.account a
-- Two counts so that each reads its own partial index (jobs_lease_idx, jobs_poll_idx).
CROSS JOIN (SELECT (SELECT count(*) FROM klingq.jobs WHERE state = 'dispatching')
                 + (SELECT count(*) FROM klingq.jobs WHERE state = 'submitted') AS in_flight) f;
COMMENT ON VIEW klingq.limit_state IS
  'One row per account: learned limits (0 = unlimited; limits_source plan | headers), '
  'remaining and reset per window, *_paused_until after a 429, in_flight (jobs '
  'dispatching or submitted), day_used, balance and balance_at, halted_reason (401), paused.';

CREATE VIEW klingq.failures_by_class AS
SELECT coalesce(e.detail -> 'error' ->> 'class', j.last_error -> 'last' ->> 'class', 'unknown')
                                AS class,
       count(*)                 AS failures,
       count(DISTINCT e.job_id) AS jobs,
       max(e.at)                AS last_failed_at,
       (array_agg(coalesce(e.detail -> 'error' ->> 'message', j.last_error -> 'last' ->> 'message')
                  ORDER BY e.at DESC))[1] AS last_message
FROM klingq.job_events e
JOIN klingq.jobs j ON j.id = e.job_id
WHERE e.to_state = 'failed' AND e.at >= now() - interval '24 hours'
GROUP BY 1;
COMMENT ON VIEW klingq.failures_by_class IS
  'Jobs that failed in the last 24 hours by error class (invalid_job, transient, '
  'rate_limited, no_credit, unauthorized, remote_failed, stuck; unknown when none was '
  'recorded): failure events, distinct jobs, the latest time and message.';

CREATE VIEW klingq.live_instances AS
SELECT i.id                                               AS id,
       i.host                                             AS host,
       i.pid                                              AS pid,
       i.version                                          AS version,
       i.started_at                                       AS started_at,
       i.heartbeat_at                                     AS heartbeat_at,
       extract(epoch FROM now() - i.heartbeat_at)::float8 AS seconds_since_heartbeat,
       i.heartbeat_at >= now() - interval '30 seconds'    AS live,
       i.status                                           AS status
FROM klingq.instances i
WHERE i.heartbeat_at >= now() - interval '1 hour';
COMMENT ON VIEW klingq.live_instances IS
  'klingqd instances seen in the last hour; live = a heartbeat in the last 30 seconds.';
