-- The console's job list: newest first, keyset-paged by id. $1 state or NULL, $2 batch
-- or NULL, $3 text in the prompt or the remote id (case-insensitive, taken literally) or
-- NULL, $4 show ids below this one or NULL (the first page), $5 rows.
-- Run under session_force_custom_plans so that each filter reaches its index.
SELECT id, state::text, attempts, remote_id, credit_cost, left(prompt, 200), batch,
       last_error -> 'last' ->> 'class', last_error -> 'last' ->> 'message',
       klingq.epoch_ms(created_at), klingq.epoch_ms(updated_at), priority, wait_reason
FROM klingq.jobs
WHERE ($1::klingq.job_state IS NULL OR state = $1::klingq.job_state)
  AND ($2::text IS NULL OR batch = $2)
  AND ($3::text IS NULL
       OR prompt ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%'
       OR remote_id = $3)
  AND ($4::bigint IS NULL OR id < $4)
ORDER BY id DESC
LIMIT $5
