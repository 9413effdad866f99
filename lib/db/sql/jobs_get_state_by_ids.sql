-- The state (and lease) of the jobs $1 (bigint[]) asked for, to explain why a cancel or
-- a retry left some alone. Ids with no row are simply missing.
SELECT id, state::text, lease_owner, lease_expires_at::text
FROM klingq.jobs WHERE id = ANY($1::bigint[]) ORDER BY id
