-- Creates the account row from the plan; while limits still come from the plan (no
-- header seen yet) a changed plan in the config is applied.
-- $1 account, $2 rpm, $3 parallel, $4 daily (0 = unlimited)
INSERT INTO klingq.account (name, rpm_limit, parallel_limit, day_limit)
VALUES ($1, $2, $3, $4)
ON CONFLICT (name) DO UPDATE SET rpm_limit = $2, parallel_limit = $3, day_limit = $4
  WHERE klingq.account.limits_source = 'plan'
