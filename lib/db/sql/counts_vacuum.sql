-- The heartbeat's vacuum of the summary tables after its fold (schema 015): each fold
-- deletes the rows it sums, thousands a beat when busy, and the readers scan the whole
-- (small) tables, so their dead rows go at once rather than at autovacuum's pace.
-- Skipped while another vacuum holds them.
VACUUM (SKIP_LOCKED) klingq.batch_counts, klingq.event_minutes
