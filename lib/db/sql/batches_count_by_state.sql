-- Jobs per (batch, state) with the credits recorded, the highest queued priority and the
-- expected cost of the queued rows: the console's batch list and its ETA. Unlabelled
-- jobs are one batch (NULL). $1..$4: the price table (klingq.expected_cost).
SELECT batch, state::text, count(*), coalesce(sum(credit_cost), 0)::bigint,
       max(priority) FILTER (WHERE state = 'queued'),
       klingq.epoch_ms(max(updated_at)),
       coalesce(sum(klingq.expected_cost(mode, duration, $1, $2, $3, $4)) FILTER (WHERE state = 'queued'), 0)::bigint
FROM klingq.jobs
GROUP BY batch, state
