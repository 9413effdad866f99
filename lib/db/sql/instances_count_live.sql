SELECT count(*) FROM klingq.instances WHERE heartbeat_at > now() - interval '30 seconds'
