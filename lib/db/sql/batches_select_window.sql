-- A page of the claim's walk: the unpaused active batches, lowest pass first (then key),
-- $1 of them from offset $2, with their settings and share state, read from
-- batches_pass_idx in its order (see migration 012).
SELECT key, batch IS NULL, weight, max_parallel, daily_cap, budget, pass, day_count, day_key
FROM klingq.batches
WHERE active AND NOT paused
ORDER BY pass, key
LIMIT $1 OFFSET $2
