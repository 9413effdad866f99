-- One job, every column the console's job page shows. $1 id.
SELECT id, state::text, prompt, duration, aspect_ratio, version, mode, priority, batch,
       attempts, max_attempts, wait_reason, remote_id, url, credit_cost, last_error::text,
       output_path, output_bytes, output_error::text, lease_owner,
       klingq.epoch_ms(lease_expires_at), klingq.epoch_ms(run_after),
       klingq.epoch_ms(created_at), klingq.epoch_ms(submitted_at),
       klingq.epoch_ms(completed_at), klingq.epoch_ms(updated_at)
FROM klingq.jobs
WHERE id = $1
