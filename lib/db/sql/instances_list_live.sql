-- Instances with a heartbeat in the last 30 s (as instances_count_live counts them).
SELECT id, host, pid, version, klingq.epoch_ms(started_at), klingq.epoch_ms(heartbeat_at),
       status::text
FROM klingq.instances
WHERE heartbeat_at > now() - interval '30 seconds'
ORDER BY id
