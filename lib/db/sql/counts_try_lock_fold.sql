-- One instance at a time folds klingq.batch_counts and klingq.event_minutes: two folds
-- deleting the same thousands of rows in different orders could deadlock. Held to the
-- end of the transaction; false: another instance is folding, skip this beat.
SELECT pg_try_advisory_xact_lock(hashtext('klingq.counts fold'))
