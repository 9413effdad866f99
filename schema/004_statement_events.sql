-- job_events from one trigger call per UPDATE statement instead of one PL/pgSQL call and
-- one INSERT per row: a claim or a recorded group of submits moves hundreds of rows in
-- one statement, and the per-row trigger was a large share of the database's CPU per job.
-- Same rows, same columns; a statement trigger with transition tables cannot be limited
-- to UPDATE OF state, so it compares the old and new state itself.
DROP TRIGGER jobs_record_event ON klingq.jobs;
DROP FUNCTION klingq.jobs_record_event();

CREATE FUNCTION klingq.jobs_record_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO klingq.job_events (job_id, from_state, to_state, instance, detail)
  SELECT n.id, o.state, n.state, n.lease_owner,
         jsonb_strip_nulls(jsonb_build_object(
           'attempts', n.attempts, 'remote_id', n.remote_id,
           'error', CASE WHEN n.last_error IS DISTINCT FROM o.last_error THEN n.last_error -> 'last' END,
           'wait_reason', n.wait_reason))
  FROM new_rows n JOIN old_rows o ON o.id = n.id
  WHERE o.state IS DISTINCT FROM n.state
  ORDER BY n.id;
  RETURN NULL;
END $$;
CREATE TRIGGER jobs_record_events AFTER UPDATE ON klingq.jobs
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION klingq.jobs_record_events();
