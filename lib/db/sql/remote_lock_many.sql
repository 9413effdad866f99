-- The same locks for a group of remote ids ($1, a JSON array), taken in one order so two
-- groups that share an id (a resubmit after a lost lease) cannot deadlock.
SELECT pg_advisory_xact_lock(k) FROM (
  SELECT hashtext('klingq.remote:' || r) AS k FROM jsonb_array_elements_text($1::jsonb) r ORDER BY k) s
