-- The highest applied version, 0 when none is.
SELECT coalesce(max(version), 0) FROM klingq.schema_migrations
