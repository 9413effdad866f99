-- The earliest pending download (epoch ms), NULL when none is pending.
SELECT klingq.epoch_ms(min(output_next_at)) FROM klingq.jobs WHERE output_next_at IS NOT NULL
