-- Locks the batches' rows ($1 keys) in key order, before batches_deactivate_idle looks
-- at their jobs; rows another transaction holds are skipped (it is queueing jobs into
-- them: they stay active). Returns the keys locked.
SELECT key FROM klingq.batches WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE SKIP LOCKED
