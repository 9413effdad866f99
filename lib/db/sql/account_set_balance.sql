-- The API's balance ($2), less what claimed rows not yet answered are expected to cost
-- (their charge was taken at the claim). $3..$6: the price table.
UPDATE klingq.account SET
  balance = $2 - (SELECT coalesce(sum(klingq.expected_cost(mode, duration, $3, $4, $5, $6)), 0)
                  FROM klingq.jobs WHERE state = 'dispatching'),
  balance_at = now()
WHERE name = $1
