-- Sets batch $1's credit cap to $2 (klingq.batch_budgets).
INSERT INTO klingq.batch_budgets (batch, budget) VALUES ($1, $2)
ON CONFLICT (batch) DO UPDATE SET budget = EXCLUDED.budget
