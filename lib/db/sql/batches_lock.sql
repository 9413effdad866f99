-- Locks the batches' rows ($1 keys) in key order, before batches_deactivate_idle looks
-- at their jobs; rows another transaction holds are skipped (it is queueing jobs into
-- them: they stay active). Returns the keys locked. Each row through batches_key_idx (a
-- filter on the keys let the planner scan the table; see batches_save_shares).
SELECT b.key
FROM (SELECT DISTINCT key FROM unnest($1::text[]) AS u(key) ORDER BY key) k
CROSS JOIN LATERAL (SELECT key FROM klingq.batches WHERE key = k.key FOR UPDATE SKIP LOCKED) b
