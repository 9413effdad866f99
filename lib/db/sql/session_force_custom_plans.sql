-- For the rest of this transaction, plan each prepared statement for its parameters: a
-- filter "($1 IS NULL OR state = $1)" planned generically cannot use the index its
-- actual value allows (the console's job list).
SET LOCAL plan_cache_mode = force_custom_plan
