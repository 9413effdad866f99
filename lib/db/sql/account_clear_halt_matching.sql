-- Clears the halt only when its reason starts with $2 (the dispatcher names which halts
-- a start may lift). Returns the account's name when a halt was cleared.
-- $1 account, $2 reason prefix
UPDATE klingq.account SET halted_reason = NULL, halted_at = NULL
WHERE name = $1 AND left(halted_reason, length($2)) = $2
RETURNING name
