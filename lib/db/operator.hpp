// The statements of the operator CLI (klingq status, jobs, cancel, retry, pause, resume,
// limits, estimate): reading the queue and the account row, and steering them by hand.
// Typed statements only, plain values in and row structs out; what is printed, and why
// a job was refused, is decided in lib/cli. Each statement is a file of lib/db/sql/.
//
// Time stamps come back as PostgreSQL's text of a timestamptz in the session's zone
// (the CLI's session is UTC: "2025-01-31 12:00:00.123+00"): they are only printed, and
// the text keeps the server's precision exactly.
#pragma once

#include <pqxx/transaction_base>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace klingq::db {

namespace queue_summary {
// One (state, batch) combination of klingq.queue_summary (only those that exist).
struct Row {
  std::string state;                           // a klingq.job_state
  std::optional<std::string> batch;            // NULL: unlabelled jobs
  std::int64_t jobs = 0;                       // rows in this combination
  std::int64_t credit_cost = 0;                // recorded credit_cost summed
  std::string oldest_created_at;               // time stamp text
  std::optional<double> oldest_age_seconds;    // now() - oldest_created_at
};
// In job_state order, unlabelled first within a state; `batch` set: that batch only.
std::vector<Row> select(pqxx::transaction_base& tx, const std::optional<std::string>& batch);
}  // namespace queue_summary

namespace jobs_admin {
// A job as klingq jobs lists it.
struct Listed {
  std::int64_t id = 0;
  std::string state;
  std::int64_t attempts = 0;
  std::optional<std::string> remote_id;
  std::optional<std::int64_t> credit_cost;
  std::string prompt;
  std::optional<std::string> batch;
  std::optional<std::string> error_class;    // last_error.last.class
  std::optional<std::string> error_message;  // last_error.last.message
  std::string created_at;                    // time stamp text
  std::optional<std::string> url;            // the video, once completed
};
// Queued jobs with a wait_reason, counted by reason (most first); `batch` when given.
std::vector<std::pair<std::string, std::int64_t>> count_waiting(pqxx::transaction_base& tx,
                                                                const std::optional<std::string>& batch);

// At most `limit` jobs in id order, of `state` and `batch` when given.
std::vector<Listed> list(pqxx::transaction_base& tx, const std::optional<std::string>& state,
                         const std::optional<std::string>& batch, std::int64_t limit);

// Cancels the queued jobs, and the dispatching ones whose lease expired (their instance
// is gone), among `ids` / of `batch`; returns the ids cancelled. A job claimed a moment
// ago is left alone (the UPDATE re-checks the condition on rows changed meanwhile).
std::vector<std::int64_t> cancel_by_ids(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids);
std::vector<std::int64_t> cancel_by_batch(pqxx::transaction_base& tx, const std::string& batch);
// The same for the unlabelled jobs (batch NULL).
std::vector<std::int64_t> cancel_unlabelled(pqxx::transaction_base& tx);

// The failed or cancelled jobs among `ids` back to queued as if new, keeping their
// error history (an accepted one gets a new idempotency key); returns the ids retried.
std::vector<std::int64_t> retry_by_ids(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids);
// The same for the failed jobs (failed_only) or the failed and cancelled ones, of
// `batch` when given, or of the unlabelled jobs only (batch NULL) with `unlabelled`.
std::vector<std::int64_t> retry_by_selection(pqxx::transaction_base& tx, const std::optional<std::string>& batch,
                                             bool failed_only, bool unlabelled = false);

// Where a job stands, to explain why a cancel or a retry left it alone.
struct Current {
  std::int64_t id = 0;
  std::string state;
  std::optional<std::string> lease_owner;
  std::optional<std::string> lease_expires_at;  // time stamp text
};
// The jobs among `ids` that exist, in id order.
std::vector<Current> state_by_ids(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids);
// (state, jobs) of `batch`, only the states that occur.
std::vector<std::pair<std::string, std::int64_t>> count_batch_by_state(pqxx::transaction_base& tx,
                                                                       const std::string& batch);
// (state, jobs) of the unlabelled jobs (batch NULL), only the states that occur.
std::vector<std::pair<std::string, std::int64_t>> count_unlabelled_by_state(pqxx::transaction_base& tx);
// Whether a batch with this label exists: a job of it or its klingq.batches row.
bool batch_exists(pqxx::transaction_base& tx, const std::string& batch);

// Queued jobs still to be charged, by price (a claim charges the balance at once, so
// dispatching jobs are paid for already).
struct QueuedAtPrice {
  std::string mode;
  int duration = 5;
  std::int64_t jobs = 0;
};
// In (mode, duration) order, of `batch` when given.
std::vector<QueuedAtPrice> count_queued_by_price(pqxx::transaction_base& tx,
                                                 const std::optional<std::string>& batch);
}  // namespace jobs_admin

namespace account_admin {
// The 'default' account row (created when klingqd has not yet done so) is paused with
// `reason` / resumed. Both return halted_reason: a 401 halt is not a pause, and a
// resume does not lift it.
std::optional<std::string> pause(pqxx::transaction_base& tx, const std::optional<std::string>& reason);
std::optional<std::string> resume(pqxx::transaction_base& tx);

// klingq.limit_state's row of the 'default' account. Limits: 0 = unlimited.
struct LimitState {
  std::string account;
  std::string limits_source;  // plan | headers
  std::int64_t rpm_limit = 0;
  std::optional<std::int64_t> rpm_remaining;
  std::optional<std::string> rpm_reset_at;  // time stamp text, as every *_at/_until below
  std::optional<std::string> rpm_paused_until;
  std::int64_t day_limit = 0;
  std::int64_t day_used = 0;
  std::optional<std::int64_t> day_remaining;
  std::optional<std::string> day_reset_at;
  std::optional<std::string> day_paused_until;
  std::int64_t parallel_limit = 0;
  std::int64_t in_flight = 0;  // jobs dispatching or submitted
  std::optional<std::string> parallel_paused_until;
  std::optional<std::int64_t> balance;  // NULL: never queried
  std::optional<std::string> balance_at;
  std::optional<std::string> halted_reason;  // a 401
  std::optional<std::string> halted_at;
  bool paused = false;
  std::optional<std::string> paused_reason;
  std::string updated_at;
  std::optional<std::int64_t> day_start_ms;  // learned: the API's day begins this long after 00:00 UTC
  bool day_reset_reported = false;           // day_reset_at came from a Reset-Day header
};
// Nothing before klingqd (or klingq pause) created the row.
std::optional<LimitState> limit_state(pqxx::transaction_base& tx);

// The last known balance of the 'default' account.
struct Balance {
  std::optional<std::int64_t> credits;    // NULL: never queried
  std::optional<std::string> balance_at;  // time stamp text
};
// Nothing when the row does not exist yet.
std::optional<Balance> balance(pqxx::transaction_base& tx);
}  // namespace account_admin

}  // namespace klingq::db
