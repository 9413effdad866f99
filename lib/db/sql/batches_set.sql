-- klingq batch set: creates the batch's row or changes the settings given. $1 batch (NULL:
-- the unlabelled jobs); $2 weight or NULL to keep; for max_parallel, daily_cap and budget
-- a pair (change?, value or NULL for none): $3/$4, $5/$6, $7/$8. Returns the row.
INSERT INTO klingq.batches AS b (batch, weight, max_parallel, daily_cap, budget)
VALUES ($1, coalesce($2::int, 1), $4::int, $6::int, $8::bigint)
ON CONFLICT (key) DO UPDATE SET
  weight       = coalesce($2::int, b.weight),
  max_parallel = CASE WHEN $3::bool THEN $4::int ELSE b.max_parallel END,
  daily_cap    = CASE WHEN $5::bool THEN $6::int ELSE b.daily_cap END,
  budget       = CASE WHEN $7::bool THEN $8::bigint ELSE b.budget END,
  updated_at   = now()
RETURNING batch, weight, max_parallel, daily_cap, budget, paused
