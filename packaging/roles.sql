-- The roles klingq's programs need, least privilege each, as group roles (NOLOGIN):
-- grant them to your login roles.
--
--   klingq_daemon    klingqd: claims, records and polls jobs, the account row, its
--                    heartbeat, the webhook inbox, downloads. Reads the schema version.
--   klingq_operator  the klingq CLI (submit, cancel, retry, pause/resume, status, jobs,
--                    limits, estimate); not `klingq migrate`, which the owner runs.
--   klingq_reader    read-only, for dashboards: the documented views only.
--
-- Run it as the role that owns the schema (the one that runs `klingq migrate`), after
-- migrating, and again after each upgrade: it only grants, and creates what is missing.
--
--   klingq migrate --database postgresql://klingq_owner@db/klingq
--   psql postgresql://klingq_owner@db/klingq -v ON_ERROR_STOP=1 -f /usr/share/klingq/roles.sql
--   psql ... -c "CREATE ROLE klingqd LOGIN IN ROLE klingq_daemon"        # then its password or
--   psql ... -c "CREATE ROLE alice LOGIN IN ROLE klingq_operator"        # pg_hba.conf entry
--   psql ... -c "CREATE ROLE grafana LOGIN PASSWORD '...' IN ROLE klingq_reader"
--
-- klingqd also needs LISTEN/NOTIFY (any role may) and pg_advisory_xact_lock (likewise).
-- Creating roles needs CREATEROLE; where the owner lacks it, a superuser runs the three
-- CREATE ROLE lines first (the DO block below then finds them).

DO $$
DECLARE
  role_name text;
BEGIN
  FOREACH role_name IN ARRAY ARRAY['klingq_daemon', 'klingq_operator', 'klingq_reader'] LOOP
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
    END IF;
  END LOOP;
END
$$;

GRANT USAGE ON SCHEMA klingq TO klingq_daemon, klingq_operator, klingq_reader;

-- klingqd: every table's rows (the triggers on klingq.jobs write job_events and
-- job_counts as the caller), never the schema itself.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA klingq TO klingq_daemon;
REVOKE INSERT, UPDATE, DELETE ON klingq.schema_migrations FROM klingq_daemon;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA klingq TO klingq_daemon, klingq_operator;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA klingq TO klingq_daemon, klingq_operator, klingq_reader;

-- The CLI: reads everything; loads (COPY), cancels and retries jobs, which writes their
-- history and the per-state counts by trigger; pauses and resumes the account.
GRANT SELECT ON ALL TABLES IN SCHEMA klingq TO klingq_operator;
GRANT INSERT, UPDATE ON klingq.jobs TO klingq_operator;
GRANT INSERT ON klingq.job_events, klingq.job_counts TO klingq_operator;
-- The per-batch and per-minute counts (schema 015), which the same triggers append to.
GRANT INSERT ON klingq.batch_counts, klingq.event_minutes TO klingq_operator;
-- Every operator action (klingq pause, cancel, retry, batch ...) is recorded here.
GRANT INSERT ON klingq.operator_events TO klingq_operator;
GRANT INSERT, UPDATE ON klingq.account TO klingq_operator;
-- klingq batch set|pause|resume, and the batch rows a load or retry creates by trigger.
GRANT INSERT, UPDATE ON klingq.batches TO klingq_operator;
GRANT INSERT, UPDATE, DELETE ON klingq.batch_budgets TO klingq_operator;

-- Dashboards: the views (schema/003_views.sql), which read the tables with their
-- owner's rights; no table, so no prompt text or webhook body beyond what a view shows.
DO $$
DECLARE
  view_name text;
BEGIN
  FOR view_name IN SELECT viewname FROM pg_views WHERE schemaname = 'klingq' LOOP
    EXECUTE format('GRANT SELECT ON klingq.%I TO klingq_reader', view_name);
  END LOOP;
END
$$;

-- Tables a later migration adds reach klingqd and the CLI without running this again
-- (views still need a re-run for the reader).
ALTER DEFAULT PRIVILEGES IN SCHEMA klingq GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO klingq_daemon;
ALTER DEFAULT PRIVILEGES IN SCHEMA klingq GRANT SELECT ON TABLES TO klingq_operator;
ALTER DEFAULT PRIVILEGES IN SCHEMA klingq GRANT USAGE ON SEQUENCES TO klingq_daemon, klingq_operator;
