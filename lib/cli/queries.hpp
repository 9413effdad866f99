// Every SQL statement of the klingq CLI, one named constant each (STYLE.md rule 2),
// always with parameters. Time stamps are read as text in a UTC session (see
// Session in cli.cpp) and printed as ISO 8601.
#pragma once

namespace klingq::cli::queries {

// status: state x batch counts from the dashboard view. $1: batch or NULL for all.
inline constexpr const char* queue_summary_select = R"sql(
SELECT state, batch, jobs, credit_cost, oldest_created_at::text,
       extract(epoch FROM now() - oldest_created_at)::float8
FROM klingq.queue_summary
WHERE ($1::text IS NULL OR batch = $1)
ORDER BY state::klingq.job_state, batch NULLS FIRST
)sql";

// jobs: $1 state or NULL, $2 batch or NULL, $3 limit.
inline constexpr const char* jobs_list = R"sql(
SELECT id, state::text, attempts, remote_id, credit_cost, prompt, batch,
       last_error -> 'last' ->> 'class', last_error -> 'last' ->> 'message',
       created_at::text
FROM klingq.jobs
WHERE ($1::klingq.job_state IS NULL OR state = $1::klingq.job_state)
  AND ($2::text IS NULL OR batch = $2)
ORDER BY id
LIMIT $3
)sql";

// What may be cancelled: queued jobs, and dispatching jobs whose lease expired (their
// instance is gone). Under READ COMMITTED the UPDATE re-checks this on rows a
// dispatcher changed meanwhile, so a job claimed a moment ago is not cancelled.
#define KLINGQ_CANCELLABLE \
  "(state = 'queued' OR (state = 'dispatching' AND lease_expires_at < now()))"
#define KLINGQ_CANCEL_SET \
  "SET state = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, wait_reason = NULL"

// $1: bigint[] of ids.
inline constexpr const char* cancel_by_ids =
    "UPDATE klingq.jobs " KLINGQ_CANCEL_SET
    " WHERE id = ANY($1::bigint[]) AND " KLINGQ_CANCELLABLE " RETURNING id";
// $1: batch.
inline constexpr const char* cancel_by_batch =
    "UPDATE klingq.jobs " KLINGQ_CANCEL_SET
    " WHERE batch = $1 AND " KLINGQ_CANCELLABLE " RETURNING id";
#undef KLINGQ_CANCELLABLE
#undef KLINGQ_CANCEL_SET

// The state of the jobs asked for, to explain refusals. $1: bigint[].
inline constexpr const char* jobs_state_by_ids = R"sql(
SELECT id, state::text, lease_owner, lease_expires_at::text
FROM klingq.jobs WHERE id = ANY($1::bigint[]) ORDER BY id
)sql";
// Jobs of a batch by state. $1: batch.
inline constexpr const char* batch_states = R"sql(
SELECT state::text, count(*) FROM klingq.jobs WHERE batch = $1 GROUP BY state
)sql";

// retry: back to queued as if new, keeping the error history. A job the API accepted
// (remote_id set) gets a new idempotency key: with the old one the API would hand back
// the same failed job. The current error moves to last_error.history.
#define KLINGQ_RETRY_SET                                                                    \
  "SET state = 'queued', attempts = 0, run_after = now(), wait_reason = NULL, "            \
  "lease_owner = NULL, lease_expires_at = NULL, "                                           \
  "idempotency_key = CASE WHEN remote_id IS NOT NULL THEN gen_random_uuid() "               \
  "                       ELSE idempotency_key END, "                                       \
  "remote_id = NULL, url = NULL, credit_cost = NULL, metadata = NULL, "                     \
  "submitted_at = NULL, completed_at = NULL, next_poll_at = NULL, polls = 0, "              \
  "last_error = CASE WHEN last_error ? 'last' THEN jsonb_build_object('history', "          \
  "  coalesce(last_error -> 'history', '[]'::jsonb) || jsonb_build_array(last_error -> 'last')) " \
  "  ELSE last_error END "

// $1: bigint[].
inline constexpr const char* retry_by_ids =
    "UPDATE klingq.jobs " KLINGQ_RETRY_SET
    "WHERE id = ANY($1::bigint[]) AND state IN ('failed', 'cancelled') RETURNING id";
// $1: batch or NULL, $2: true for failed only, false for failed and cancelled.
inline constexpr const char* retry_by_selection =
    "UPDATE klingq.jobs " KLINGQ_RETRY_SET
    "WHERE ($1::text IS NULL OR batch = $1) "
    "AND (state = 'failed' OR (NOT $2::boolean AND state = 'cancelled')) RETURNING id";
#undef KLINGQ_RETRY_SET

inline constexpr const char* notify_jobs = "SELECT pg_notify('klingq_jobs', $1)";

// pause / resume: the shared account row, created when klingqd has not yet done so.
inline constexpr const char* account_pause = R"sql(
INSERT INTO klingq.account (name, paused, paused_reason) VALUES ('default', true, $1)
ON CONFLICT (name) DO UPDATE
  SET paused = true, paused_reason = EXCLUDED.paused_reason, updated_at = now()
RETURNING halted_reason
)sql";
inline constexpr const char* account_resume = R"sql(
INSERT INTO klingq.account (name, paused, paused_reason) VALUES ('default', false, NULL)
ON CONFLICT (name) DO UPDATE SET paused = false, paused_reason = NULL, updated_at = now()
RETURNING halted_reason
)sql";

// limits: the dashboard view, as text so NULL stays NULL.
inline constexpr const char* limit_state_select = R"sql(
SELECT account, limits_source,
       rpm_limit, rpm_remaining, rpm_reset_at::text, rpm_paused_until::text,
       day_limit, day_used, day_remaining, day_reset_at::text, day_paused_until::text,
       parallel_limit, in_flight, parallel_paused_until::text,
       balance, balance_at::text, halted_reason, halted_at::text,
       paused, paused_reason, updated_at::text
FROM klingq.limit_state WHERE account = 'default'
)sql";

// estimate: jobs still to be charged by mode and duration (a claim charges the known
// balance at once, so dispatching rows are paid for already). $1: batch or NULL.
inline constexpr const char* pending_by_price = R"sql(
SELECT mode, duration, count(*)
FROM klingq.jobs
WHERE state = 'queued' AND ($1::text IS NULL OR batch = $1)
GROUP BY mode, duration ORDER BY mode, duration
)sql";
inline constexpr const char* account_balance = R"sql(
SELECT balance, balance_at::text FROM klingq.account WHERE name = 'default'
)sql";

}  // namespace klingq::cli::queries
