-- Records migration $1 (its file name $2) as applied.
INSERT INTO klingq.schema_migrations (version, name) VALUES ($1, $2)
