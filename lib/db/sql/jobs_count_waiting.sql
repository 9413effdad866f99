-- klingq status: queued jobs that say why they wait, by reason ($1: batch or NULL).
SELECT wait_reason, count(*)
FROM klingq.jobs
WHERE state = 'queued' AND wait_reason IS NOT NULL AND ($1::text IS NULL OR batch = $1)
GROUP BY wait_reason
ORDER BY count(*) DESC, wait_reason
