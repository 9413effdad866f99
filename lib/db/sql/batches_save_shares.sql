-- The claim's share state after it took rows: per batch $1 key, $2 pass, $3 day_count,
-- $4 day_key; $5 the scheduler's virtual time. Rows are taken in key order (the order
-- the jobs triggers lock batches in) and a row another transaction holds is skipped: a
-- load that queues jobs into the batch holds it until it commits, and the claim, which
-- holds the account lock, must not wait for it (that batch keeps its old pass this once).
-- The key = ANY($1) reaches the rows through batches_key_idx: joined on the unnest alone,
-- the generic plan scanned the table and every dead row the claims since the last vacuum
-- left in it.
WITH clock AS (UPDATE klingq.batch_share_clock SET vtime = $5),
free AS (SELECT key FROM klingq.batches WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE SKIP LOCKED)
UPDATE klingq.batches b SET pass = c.pass, day_count = c.day_count, day_key = c.day_key
FROM unnest($1::text[], $2::float8[], $3::int[], $4::bigint[]) AS c(key, pass, day_count, day_key)
WHERE b.key = ANY($1::text[]) AND b.key = c.key AND b.key IN (SELECT key FROM free)
