-- Jobs per (batch, state) with the credits recorded, the highest queued priority and the
-- expected cost of the queued rows: the console's batch list and its ETA. Unlabelled
-- jobs are one batch (NULL). $1..$4: the price table (klingq.expected_cost). The settled
-- states come from the net changes of klingq.batch_counts (schema 015), the jobs in
-- flight from klingq.jobs through their partial indexes (jobs_lease_idx, jobs_poll_idx):
-- the cost grows with the batches and the jobs in flight, not with the queue or the
-- history. The highest queued priority is one probe per batch of jobs_batch_queue_idx.
WITH c AS (
  SELECT key, state, sum(n) AS n, sum(credits) AS credits, max(changed_at) AS changed_at,
         sum(n * klingq.expected_cost(mode, duration, $1, $2, $3, $4)) AS expected
  FROM klingq.batch_counts
  GROUP BY key, state
  HAVING sum(n) <> 0
  -- One query per in-flight state, each matching its partial index (an IN list of both
  -- matches neither, and the planner scans the table).
  UNION ALL
  SELECT coalesce(batch, ''), 'dispatching'::klingq.job_state, count(*), coalesce(sum(credit_cost), 0),
         max(updated_at), 0
  FROM klingq.jobs WHERE state = 'dispatching' GROUP BY 1
  UNION ALL
  SELECT coalesce(batch, ''), 'submitted'::klingq.job_state, count(*), coalesce(sum(credit_cost), 0),
         max(updated_at), 0
  FROM klingq.jobs WHERE state = 'submitted' GROUP BY 1
)
SELECT nullif(c.key, ''), c.state::text, c.n::bigint, c.credits::bigint,
       CASE WHEN c.state = 'queued' THEN
         (SELECT j.priority FROM klingq.jobs j
          WHERE coalesce(j.batch, '') = c.key AND j.state = 'queued'
          ORDER BY j.priority DESC LIMIT 1) END,
       klingq.epoch_ms(c.changed_at),
       CASE WHEN c.state = 'queued' THEN c.expected ELSE 0 END::bigint
FROM c
