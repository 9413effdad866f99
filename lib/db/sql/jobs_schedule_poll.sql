-- One more poll of job $1 is being sent now; the next is due in $2 seconds.
UPDATE klingq.jobs SET polls = polls + 1, prior_polled_at = polled_at, polled_at = now(),
  next_poll_at = now() + make_interval(secs => $2)
WHERE id = $1
