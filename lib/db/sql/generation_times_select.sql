-- Every kind's generation-time quantiles (milliseconds).
SELECT mode, duration, version, samples, p10_ms, p25_ms, p50_ms, p75_ms, p90_ms, p99_ms
FROM klingq.generation_times ORDER BY mode, duration, version
