-- The sweep's batches: up to $1 unpaused active batches of the lowest pass (where one
-- whose jobs left the queue by a cancel or a delete stays), locked unless another
-- transaction holds them (that one is queueing jobs into it: it stays active).
SELECT key FROM klingq.batches WHERE active AND NOT paused ORDER BY pass LIMIT $1 FOR UPDATE SKIP LOCKED
