-- Queued rows $1 (bigint[]) that the credit gate could not pay for say why they wait
-- ($2: the reason); rows that already say so are not written again. The claim clears it.
UPDATE klingq.jobs SET wait_reason = $2
WHERE id = ANY($1::bigint[]) AND state = 'queued' AND wait_reason IS DISTINCT FROM $2
