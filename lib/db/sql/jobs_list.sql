-- klingq jobs: the rows in id order with their latest error and video URL. $1 state or NULL, $2 batch
-- or NULL, $3 limit.
SELECT id, state::text, attempts, remote_id, credit_cost, prompt, batch,
       last_error -> 'last' ->> 'class', last_error -> 'last' ->> 'message',
       created_at::text, url
FROM klingq.jobs
WHERE ($1::klingq.job_state IS NULL OR state = $1::klingq.job_state)
  AND ($2::text IS NULL OR batch = $2)
ORDER BY id
LIMIT $3
