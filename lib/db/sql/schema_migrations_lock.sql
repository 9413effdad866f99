-- Serialises migration runners (two klingq migrate, or several hosts) for the
-- transaction: $1 is a fixed key unique to klingq's runner.
SELECT pg_advisory_xact_lock($1)
