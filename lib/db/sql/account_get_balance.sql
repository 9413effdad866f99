-- The account's last known balance (NULL = never queried) and when it was learned.
SELECT balance, balance_at::text FROM klingq.account WHERE name = 'default'
