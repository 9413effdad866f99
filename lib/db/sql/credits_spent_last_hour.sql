-- Credits charged by the submits of the last hour (the console's burn rate), from
-- klingq.event_minutes (schema 015): the cost each submit's event recorded.
SELECT coalesce(sum(credits), 0)::bigint
FROM klingq.event_minutes
WHERE minute >= date_trunc('minute', now() - interval '1 hour') AND to_state = 'submitted'
