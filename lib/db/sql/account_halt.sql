-- Halts dispatch for every instance (a 401): the first reason stays.
UPDATE klingq.account SET halted_reason = $2, halted_at = now()
WHERE name = $1 AND halted_reason IS NULL
