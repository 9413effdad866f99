-- The claim's share state after it took rows: per batch $1 key, $2 pass, $3 day_count,
-- $4 day_key; $5 the scheduler's virtual time. Rows are taken in key order (the order
-- the jobs triggers lock batches in) and a row another transaction holds is skipped: a
-- load that queues jobs into the batch holds it until it commits, and the claim, which
-- holds the account lock, must not wait for it (that batch keeps its old pass this once).
-- Each row is found through batches_key_idx and written by the ctid it was locked at: a
-- join on the keys let the planner scan the whole table, dead rows too, and compare each
-- row with every key (0.35 ms at 1,000 batches, per claim). A row changed and committed
-- after this statement began is not seen at its new ctid and keeps its old pass, as a
-- skipped one does.
WITH clock AS (UPDATE klingq.batch_share_clock SET vtime = $5),
free AS (SELECT b.tid, c.pass, c.day_count, c.day_key
         FROM (SELECT * FROM unnest($1::text[], $2::float8[], $3::int[], $4::bigint[]) AS u(key, pass, day_count, day_key)
               ORDER BY key) c
         CROSS JOIN LATERAL (SELECT ctid AS tid FROM klingq.batches WHERE key = c.key
                             FOR UPDATE SKIP LOCKED) b)
UPDATE klingq.batches b SET pass = f.pass, day_count = f.day_count, day_key = f.day_key
FROM free f
WHERE b.ctid = f.tid
