-- The expected cost of a job by mode and duration, given the configured price table.
-- Until now every statement that needed it spliced the same CASE from a C++ macro; the
-- statements now live in lib/db/sql/*.sql and call this instead. LANGUAGE sql, IMMUTABLE
-- and a single expression, so the planner inlines it: it costs what the CASE cost.
CREATE OR REPLACE FUNCTION klingq.expected_cost(mode text, duration int, standard_5 bigint,
                                                standard_10 bigint, professional_5 bigint,
                                                professional_10 bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN mode = 'professional'
              THEN CASE WHEN duration >= 10 THEN professional_10 ELSE professional_5 END
              ELSE CASE WHEN duration >= 10 THEN standard_10 ELSE standard_5 END END
$$;
