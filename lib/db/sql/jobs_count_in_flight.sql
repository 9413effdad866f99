-- Jobs holding a parallel slot, of every instance. A statement of its own, run after the
-- account row is locked: a subquery of the locking SELECT would count with the snapshot
-- taken before it waited for the lock and miss the rows the previous holder just claimed.
-- Submitted rows are counted only up to $1 (the parallel limit, 0 when unlimited): all
-- the limiter needs is whether a slot is free, and a large backlog stays cheap.
SELECT (SELECT count(*) FROM klingq.jobs WHERE state = 'dispatching')
     + (SELECT count(*) FROM (SELECT 1 FROM klingq.jobs WHERE state = 'submitted' LIMIT $1) s)
