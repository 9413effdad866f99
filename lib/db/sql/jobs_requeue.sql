-- A claimed row ($1, leased by $2) goes back to the queue: $3 error (or NULL), $4
-- attempts spent, $5 run_after (epoch ms), $6 wait_reason, $7 day_counted.
UPDATE klingq.jobs SET state = 'queued', attempts = attempts + $4, lease_owner = NULL,
  lease_expires_at = NULL, run_after = greatest(now(), klingq.from_epoch_ms($5)),
  wait_reason = $6, day_counted = $7,
  last_error = CASE WHEN $3::jsonb IS NULL THEN last_error
                    ELSE jsonb_build_object('last', $3::jsonb,
                                            'history', coalesce(last_error -> 'history', '[]') || $3::jsonb) END
WHERE id = $1 AND state = 'dispatching' AND lease_owner = $2
