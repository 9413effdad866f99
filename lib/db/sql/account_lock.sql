-- The shared limiter and credit state, locked for the rest of the transaction. The
-- database's clock comes with it, so every instance decides on the same time.
-- $1 account. Whether any batch has a budget comes from batches_budget_idx: the first
-- budgeted key in key order leaves the planner no cheap way but that partial index. An
-- EXISTS (which drops an ORDER BY) let a planner that guessed many budgets (the small
-- table's statistics lag behind) scan the table for the first one, reading every row
-- when there was none (0.13 ms at 1,000 batches, every claim).
SELECT rpm_limit, rpm_remaining, klingq.epoch_ms(rpm_reset_at), klingq.epoch_ms(rpm_next_at),
       klingq.epoch_ms(poll_next_at), klingq.epoch_ms(rpm_paused_until),
       day_limit, day_used, klingq.epoch_ms(day_reset_at), klingq.epoch_ms(day_paused_until),
       parallel_limit, klingq.epoch_ms(parallel_paused_until), limits_source,
       balance, halted_reason, paused, klingq.epoch_ms(clock_timestamp()),
       (SELECT key FROM klingq.batches WHERE budget IS NOT NULL ORDER BY key LIMIT 1) IS NOT NULL,
       day_start_ms, day_reset_reported, klingq.epoch_ms(day_submitted_at),
       klingq.epoch_ms(capacity_held_at)
FROM klingq.account WHERE name = $1 FOR UPDATE
