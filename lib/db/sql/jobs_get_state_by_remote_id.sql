SELECT state::text FROM klingq.jobs WHERE remote_id = $1
