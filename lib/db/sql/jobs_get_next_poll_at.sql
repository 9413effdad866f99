SELECT klingq.epoch_ms(min(next_poll_at)) FROM klingq.jobs WHERE state = 'submitted'
