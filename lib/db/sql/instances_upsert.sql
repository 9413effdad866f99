-- This instance's heartbeat row.
INSERT INTO klingq.instances (id, host, pid, version, status)
VALUES ($1, $2, $3, $4, $5::jsonb)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), status = excluded.status
