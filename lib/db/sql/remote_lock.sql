-- Serialises everything that concerns one remote job ($1) for the transaction: the
-- record of its submit and its webhooks.
SELECT pg_advisory_xact_lock(hashtext('klingq.remote:' || $1))
