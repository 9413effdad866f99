-- The migration runner's bookkeeping: one row per applied migration.
CREATE TABLE IF NOT EXISTS klingq.schema_migrations (
  version    int PRIMARY KEY,
  name       text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)
