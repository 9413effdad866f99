-- Wakes every instance's LISTEN klingq_jobs (at commit); $1 says why.
SELECT pg_notify('klingq_jobs', $1)
