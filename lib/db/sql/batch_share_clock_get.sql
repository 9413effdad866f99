-- The share scheduler's virtual time (read under the account lock).
SELECT vtime FROM klingq.batch_share_clock
