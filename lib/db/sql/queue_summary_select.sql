-- klingq status: jobs by state and batch from the dashboard view (time stamps as text
-- in the session's zone, the age of the oldest in seconds). $1 batch or NULL for all.
SELECT state, batch, jobs, credit_cost, oldest_created_at::text,
       extract(epoch FROM now() - oldest_created_at)::float8
FROM klingq.queue_summary
WHERE ($1::text IS NULL OR batch = $1)
ORDER BY state::klingq.job_state, batch NULLS FIRST
