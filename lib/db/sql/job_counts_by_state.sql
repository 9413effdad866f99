SELECT state::text, sum(n)::bigint FROM klingq.job_counts GROUP BY state
