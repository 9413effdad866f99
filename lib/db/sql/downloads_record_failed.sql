-- A failed attempt of job $1 while instance $2 held the claim: $3 the error (jsonb), $4
-- seconds until it is due again, or NULL to give the download up.
UPDATE klingq.jobs SET output_owner = NULL,
  output_next_at = CASE WHEN $4::float8 IS NULL THEN NULL ELSE now() + make_interval(secs => $4::float8) END,
  output_error = jsonb_build_object(
    'last', $3::jsonb || jsonb_build_object('at', now()),
    'history', coalesce(output_error -> 'history', '[]'::jsonb) || ($3::jsonb || jsonb_build_object('at', now())),
    'gave_up', $4::float8 IS NULL)
WHERE id = $1 AND output_owner = $2
