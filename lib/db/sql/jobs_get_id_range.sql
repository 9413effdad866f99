-- The lowest and highest job id (both ends of jobs_pkey; NULLs when there is no job):
-- where the console's bounded prompt search starts and when it is done.
SELECT min(id), max(id) FROM klingq.jobs
