-- Job $1's attempt by instance $2 was cut short by shutdown: not counted, due again now.
UPDATE klingq.jobs SET output_owner = NULL, output_next_at = now(),
  output_attempts = greatest(output_attempts - 1, 0)
WHERE id = $1 AND output_owner = $2
