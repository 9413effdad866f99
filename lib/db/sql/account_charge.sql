-- Takes $2 from the known balance; a negative charge is a refund.
UPDATE klingq.account SET balance = balance - $2 WHERE name = $1 AND balance IS NOT NULL
