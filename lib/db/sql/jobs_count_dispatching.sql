-- Submits on the wire, of every instance: rows dispatching (jobs_lease_idx counts them).
-- Run after the account row is locked, never as a subquery of the locking SELECT: that
-- would count with the snapshot taken before the lock wait and miss the rows the
-- previous holder of the lock just claimed.
SELECT count(*) FROM klingq.jobs WHERE state = 'dispatching'
