-- The console's prompt search, bounded so that its cost never grows with the table: the
-- jobs with ids in [$6, $4) whose prompt holds $3 (case-insensitive, taken literally),
-- newest first, at most $5; with $7 also the job whose remote id is $3, wherever its id
-- (the first page). $1 state or NULL, $2 batch or NULL. The id range is a range scan of
-- jobs_pkey reading at most $4 - $6 rows whatever the text; the page asks for the next
-- range to search further. (A trigram index would find any text at once, but it made a
-- 1 M-row load 2-5x slower and every non-HOT update of a job would add its entries
-- again: bench/README.md, "The console".) Run under session_force_custom_plans.
SELECT id, state::text, attempts, remote_id, credit_cost, left(prompt, 200), batch,
       last_error -> 'last' ->> 'class', last_error -> 'last' ->> 'message',
       klingq.epoch_ms(created_at), klingq.epoch_ms(updated_at), priority, wait_reason
FROM klingq.jobs
WHERE ($1::klingq.job_state IS NULL OR state = $1::klingq.job_state)
  AND ($2::text IS NULL OR batch = $2)
  AND ((id < $4::bigint AND id >= $6::bigint
        AND prompt ILIKE '%' || replace(replace(replace($3, '\', '\\'), '%', '\%'), '_', '\_') || '%')
       OR ($7::boolean AND remote_id = $3))
ORDER BY id DESC
LIMIT $5
