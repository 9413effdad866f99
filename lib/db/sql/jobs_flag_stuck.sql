-- Flags, once, the jobs nothing resolved within the horizon ($1 seconds): event + wait_reason.
WITH stuck AS (
  UPDATE klingq.jobs SET wait_reason = 'stuck: unresolved past poll.horizon_seconds'
  WHERE state = 'submitted' AND submitted_at < now() - make_interval(secs => $1)
    AND wait_reason IS DISTINCT FROM 'stuck: unresolved past poll.horizon_seconds'
  RETURNING id, lease_owner)
INSERT INTO klingq.job_events (job_id, from_state, to_state, instance, detail)
SELECT id, 'submitted', 'submitted', lease_owner, '{"stuck": true}'::jsonb FROM stuck
