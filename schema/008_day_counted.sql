-- A submit of this row was counted against the account's day and its answer was lost
-- (a crash, a timeout, a reset): the API may have accepted it, so the row's resubmit, with
-- the same Idempotency-Key, is not counted again. Counting it again made a day-capped
-- account hold its last jobs for a day the API had not used up. Cleared when the API
-- refused the submit for sure (the count is given back then).
ALTER TABLE klingq.jobs ADD COLUMN day_counted boolean NOT NULL DEFAULT false;
