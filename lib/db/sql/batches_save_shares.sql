-- The claim's share state after it took rows: per batch $1 key, $2 pass, $3 day_count,
-- $4 day_key; $5 the scheduler's virtual time.
WITH clock AS (UPDATE klingq.batch_share_clock SET vtime = $5)
UPDATE klingq.batches b SET pass = c.pass, day_count = c.day_count, day_key = c.day_key
FROM unnest($1::text[], $2::float8[], $3::int[], $4::bigint[]) AS c(key, pass, day_count, day_key)
WHERE b.key = c.key
