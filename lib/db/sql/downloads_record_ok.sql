-- Job $1's video is at path $2, $3 bytes: no longer pending, no error. Recorded even if
-- the claim was lost meanwhile (the file is complete either way), but not over a
-- finished download nobody asked for again.
UPDATE klingq.jobs SET output_path = $2, output_bytes = $3, output_next_at = NULL,
  output_owner = NULL, output_error = NULL
WHERE id = $1 AND (output_path IS NULL OR output_next_at IS NOT NULL)
