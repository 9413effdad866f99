-- Locks the batches' rows ($1 keys) in key order, before batches_deactivate_idle looks
-- at their jobs and batches_save_shares writes them.
SELECT key FROM klingq.batches WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE
