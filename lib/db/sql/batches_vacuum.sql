-- The heartbeat's vacuum of klingq.batches: the claim's pass updates leave dead entries at
-- the low end of batches_pass_idx, where every claim's walk begins (migration 012). A few
-- milliseconds for a table of a row per batch; skipped while another vacuum holds it.
VACUUM (SKIP_LOCKED) klingq.batches
