-- klingq batch list: every batch's settings, its queued and in-flight jobs, and its
-- submits over the last hour with their share (klingq.batch_submit_share). Time stamps
-- as text in the session's zone. $1 batch or NULL for all.
SELECT b.batch, b.weight, b.max_parallel, b.daily_cap, b.budget, b.paused, b.paused_reason,
       (SELECT count(*) FROM klingq.jobs j WHERE coalesce(j.batch, '') = b.key AND j.state = 'queued'),
       (SELECT count(*) FROM klingq.jobs j
        WHERE j.state IN ('dispatching', 'submitted') AND coalesce(j.batch, '') = b.key),
       coalesce(s.submits, 0), s.share, b.created_at::text, b.updated_at::text
FROM klingq.batches b
LEFT JOIN klingq.batch_submit_share s ON coalesce(s.batch, '') = b.key
WHERE $1::text IS NULL OR b.batch = $1
ORDER BY b.batch NULLS FIRST
