-- A group of accepted submits: $1 = [{"id":..,"remote_id":..,"cost":..,"first_poll":..}, ...]
-- (first_poll: seconds from now to the first status poll), $3 = their ids. Without
-- `j.id = ANY($3)` the plan can only read every dispatching row of every instance through
-- jobs_lease_idx and hash-join them with the group: 2.4 ms for a group
-- of 20 among 5,000 dispatching rows, against 0.07 ms by primary key. (With a few hundred
-- dispatching rows the planner still prefers the lease index, and it costs little.) The
-- ids come separately because an array derived from $1 inside the statement is unknown
-- to the planner and does not lead it to the primary key.
UPDATE klingq.jobs j SET state = 'submitted', remote_id = u.remote_id, credit_cost = u.cost,
  attempts = j.attempts + 1, submitted_at = now(), lease_expires_at = NULL,
  next_poll_at = now() + make_interval(secs => u.first_poll), wait_reason = NULL, updated_at = now()
FROM jsonb_to_recordset($1::jsonb) AS u(id bigint, remote_id text, cost bigint, first_poll float8)
WHERE j.id = ANY($3::bigint[]) AND j.id = u.id AND j.state = 'dispatching' AND j.lease_owner = $2
RETURNING j.id
