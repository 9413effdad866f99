-- The jobs of batch $1 per state (only states that occur).
SELECT state::text, count(*) FROM klingq.jobs WHERE batch = $1 GROUP BY state
