-- The versions already applied.
SELECT version FROM klingq.schema_migrations
