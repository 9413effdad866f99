-- A webhook for a remote id no row carries yet (its submit is not recorded yet) waits here.
INSERT INTO klingq.webhook_inbox (remote_id, status, url, metadata, error)
VALUES ($1, $2, $3, $4::jsonb, $5) ON CONFLICT (remote_id) DO NOTHING
