-- The history of job $1's downloads, next to its state changes: instance $2, detail $3
-- (jsonb). No row when the job is gone.
INSERT INTO klingq.job_events (job_id, from_state, to_state, instance, detail)
SELECT id, state, state, $2, $3::jsonb FROM klingq.jobs WHERE id = $1
