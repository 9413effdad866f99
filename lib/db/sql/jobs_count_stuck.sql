SELECT count(*) FROM klingq.jobs WHERE state = 'submitted'
  AND wait_reason = 'stuck: unresolved past poll.horizon_seconds'
