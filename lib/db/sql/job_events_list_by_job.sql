-- Job $1's state changes, oldest first (jobs_record_events writes them).
SELECT klingq.epoch_ms(at), from_state::text, to_state::text, instance, detail::text
FROM klingq.job_events
WHERE job_id = $1
ORDER BY at, id
