-- The batches held by `klingq batch pause` (or the console): their labels (NULL = the
-- unlabelled jobs) and why.
SELECT batch, paused_reason FROM klingq.batches WHERE paused ORDER BY batch NULLS FIRST
