-- Credits charged by jobs submitted in the last hour (the console's burn rate).
SELECT coalesce(sum(j.credit_cost), 0)::bigint
FROM klingq.job_events e
JOIN klingq.jobs j ON j.id = e.job_id
WHERE e.at >= now() - interval '1 hour' AND e.to_state = 'submitted'
