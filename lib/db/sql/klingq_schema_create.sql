-- The schema the bookkeeping table lives in, before the first migration creates the rest.
-- (A statement of its own: a prepared statement holds one command.)
CREATE SCHEMA IF NOT EXISTS klingq
