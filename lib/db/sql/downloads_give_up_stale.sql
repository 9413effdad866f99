-- Stops tracking the pending downloads that are due (lease over, or owner dead) but out
-- of attempts ($1 outputs.max_attempts) - their last attempt never reported, its
-- instance died mid-attempt - or no longer downloadable (state or url changed by hand).
-- Each completed row with a url gets output_error {last: abandoned, gave_up} and an
-- event of instance $2. The affected row count is the number of events (the rows given
-- up that had a video).
-- An owner is dead when it no longer heartbeats (every few seconds; see
-- instances_upsert.sql): its claim is due at once instead of after the whole lease, so
-- a restarted klingqd resumes within seconds. Keep that condition in step with
-- downloads_claim.sql.
WITH stale AS (
  UPDATE klingq.jobs SET output_next_at = NULL, output_owner = NULL,
    output_error = CASE WHEN state = 'completed' AND url IS NOT NULL THEN jsonb_build_object(
      'last', jsonb_build_object('class', 'abandoned', 'attempt', output_attempts, 'at', now(),
                                 'message', 'the last attempt never finished (its klingqd stopped or was killed)'),
      'history', coalesce(output_error -> 'history', '[]'::jsonb),
      'gave_up', true) ELSE output_error END
  WHERE output_next_at IS NOT NULL
    AND (output_next_at <= now()
         OR (output_owner IS NOT NULL AND NOT EXISTS (SELECT 1 FROM klingq.instances i
             WHERE i.id = output_owner AND i.heartbeat_at > now() - interval '30 seconds')))
    AND (output_attempts >= $1 OR state <> 'completed' OR url IS NULL)
  RETURNING id, state, url IS NOT NULL AS had_url)
INSERT INTO klingq.job_events (job_id, from_state, to_state, instance, detail)
SELECT id, state, state, $2, '{"download": "gave_up", "reason": "abandoned"}'::jsonb FROM stale
WHERE state = 'completed' AND had_url
