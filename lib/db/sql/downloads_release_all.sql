-- Every pending claim of instance $1 is due again now; $2 true uncounts their attempts.
UPDATE klingq.jobs SET output_owner = NULL, output_next_at = now(),
  output_attempts = CASE WHEN $2 THEN greatest(output_attempts - 1, 0) ELSE output_attempts END
WHERE output_owner = $1 AND output_next_at IS NOT NULL
