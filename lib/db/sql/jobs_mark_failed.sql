-- A claimed row ($1, leased by $2) fails for good; last_error keeps the latest error ($3)
-- and the history of all of them. $4: attempts spent.
UPDATE klingq.jobs SET state = 'failed', attempts = attempts + $4, completed_at = now(),
  lease_expires_at = NULL,
  last_error = jsonb_build_object('last', $3::jsonb,
                                  'history', coalesce(last_error -> 'history', '[]') || $3::jsonb)
WHERE id = $1 AND state = 'dispatching' AND lease_owner = $2
