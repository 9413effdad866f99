-- Recomputes the quantiles of every kind of job completed in the last $1 seconds, from
-- its last $2 completions. Kinds with no recent completion keep their figures.
WITH recent AS (
  SELECT mode, duration, coalesce(version, '') AS version, generation_ms,
         row_number() OVER (PARTITION BY mode, duration, coalesce(version, '')
                            ORDER BY completed_at DESC) AS n
  FROM klingq.jobs
  WHERE state = 'completed' AND generation_ms IS NOT NULL
    AND completed_at > now() - make_interval(secs => $1))
INSERT INTO klingq.generation_times AS g
  (mode, duration, version, samples, p10_ms, p25_ms, p50_ms, p75_ms, p90_ms, p99_ms)
SELECT mode, duration, version, count(*),
       percentile_cont(0.10) WITHIN GROUP (ORDER BY generation_ms)::bigint,
       percentile_cont(0.25) WITHIN GROUP (ORDER BY generation_ms)::bigint,
       percentile_cont(0.50) WITHIN GROUP (ORDER BY generation_ms)::bigint,
       percentile_cont(0.75) WITHIN GROUP (ORDER BY generation_ms)::bigint,
       percentile_cont(0.90) WITHIN GROUP (ORDER BY generation_ms)::bigint,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY generation_ms)::bigint
FROM recent WHERE n <= $2
GROUP BY mode, duration, version
ORDER BY mode, duration, version
ON CONFLICT (mode, duration, version) DO UPDATE SET
  samples = excluded.samples, p10_ms = excluded.p10_ms, p25_ms = excluded.p25_ms,
  p50_ms = excluded.p50_ms, p75_ms = excluded.p75_ms, p90_ms = excluded.p90_ms,
  p99_ms = excluded.p99_ms, refreshed_at = now()
