-- The waiting webhooks of the remote ids $1 (a JSON array), taken out of the inbox.
DELETE FROM klingq.webhook_inbox WHERE remote_id IN (SELECT jsonb_array_elements_text($1::jsonb))
RETURNING remote_id, status, coalesce(url, ''), coalesce(metadata::text, '{}'), coalesce(error, '')
