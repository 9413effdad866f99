-- Queued jobs of a batch whose budget is spent say why they wait. $1: the batch.
UPDATE klingq.jobs SET wait_reason = 'batch budget spent (klingq.batches.budget)'
WHERE state = 'queued' AND batch = $1
  AND wait_reason IS DISTINCT FROM 'batch budget spent (klingq.batches.budget)'
