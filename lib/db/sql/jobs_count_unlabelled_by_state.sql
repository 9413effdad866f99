-- The unlabelled jobs (batch NULL) per state (only states that occur).
SELECT state::text, count(*) FROM klingq.jobs WHERE batch IS NULL GROUP BY state
