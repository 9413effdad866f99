-- Whether klingq ever migrated this database (false on an empty one).
SELECT to_regclass('klingq.schema_migrations') IS NOT NULL
