UPDATE klingq.account SET halted_reason = NULL, halted_at = NULL WHERE name = $1
