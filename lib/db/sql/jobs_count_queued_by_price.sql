-- klingq estimate: the jobs still to be charged by mode and duration. Only queued rows:
-- a claim charges the known balance at once, so dispatching rows are paid for already.
-- $1 batch or NULL for all.
SELECT mode, duration, count(*)
FROM klingq.jobs
WHERE state = 'queued' AND ($1::text IS NULL OR batch = $1)
GROUP BY mode, duration ORDER BY mode, duration
