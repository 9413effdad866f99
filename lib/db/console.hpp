// The statements behind the operator console (lib/console) and the record of operator
// actions (lib/operate): the overview's account, batch, event and instance figures, the
// keyset-paged job list, one job with its timeline, and operator_events. Plain values in,
// row structs out; what they mean on the page is lib/console's. Times are epoch ms.
#pragma once

#include "db/prices.hpp"

#include <pqxx/transaction_base>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace klingq::db::console {

// The 'default' account row (account_overview.sql); nothing before klingqd created it.
struct Account {
  std::string limits_source;
  std::int64_t rpm_limit = 0;
  std::optional<std::int64_t> rpm_remaining;
  std::optional<std::int64_t> rpm_reset_at;
  std::optional<std::int64_t> rpm_paused_until;
  std::int64_t day_limit = 0;
  std::int64_t day_used = 0;
  std::optional<std::int64_t> day_remaining;
  std::optional<std::int64_t> day_reset_at;
  std::optional<std::int64_t> day_paused_until;
  std::int64_t parallel_limit = 0;
  std::optional<std::int64_t> parallel_paused_until;
  std::optional<std::int64_t> balance;
  std::optional<std::int64_t> balance_at;
  std::optional<std::string> halted_reason;
  std::optional<std::int64_t> halted_at;
  bool paused = false;
  std::optional<std::string> paused_reason;
  std::int64_t updated_at = 0;
  std::optional<std::int64_t> day_start_ms;
  std::int64_t now = 0;  // the database's clock
};
std::optional<Account> account(pqxx::transaction_base& tx);

// Jobs per (batch, state).
struct BatchStateCount {
  std::optional<std::string> batch;  // NULL: unlabelled
  std::string state;
  std::int64_t jobs = 0;
  std::int64_t credits = 0;                     // credit_cost recorded
  std::optional<std::int64_t> queued_priority;  // highest priority among queued rows
  std::optional<std::int64_t> last_change;      // latest updated_at
  std::int64_t queued_cost = 0;                 // expected cost of the queued rows
};
std::vector<BatchStateCount> batch_counts(pqxx::transaction_base& tx, const Prices& prices);


// Batches paused by an operator (klingq.batches): label (none: unlabelled) and reason.
std::vector<std::pair<std::optional<std::string>, std::optional<std::string>>> paused_batches(pqxx::transaction_base& tx);

// job_events of the last hour by minute, new state and error class.
struct EventBucket {
  std::int64_t minute = 0;
  std::string to_state;
  std::optional<std::string> error_class;
  std::int64_t events = 0;
};
std::vector<EventBucket> events_last_hour(pqxx::transaction_base& tx);
std::int64_t credits_spent_last_hour(pqxx::transaction_base& tx);

struct Instance {
  std::string id;
  std::string host;
  int pid = 0;
  std::string version;
  std::int64_t started_at = 0;
  std::int64_t heartbeat_at = 0;
  std::string status_json;  // what the heartbeat wrote ({"hold": ..., ...})
};
std::vector<Instance> live_instances(pqxx::transaction_base& tx);

// A page of the job list, newest first (jobs_page.sql).
struct JobFilter {
  std::optional<std::string> state;  // a klingq.job_state name
  std::optional<std::string> batch;
  std::optional<std::string> text;   // in the prompt, or a remote id
  std::optional<std::int64_t> before_id;
  std::int64_t limit = 50;
};
struct JobRow {
  std::int64_t id = 0;
  std::string state;
  std::int64_t attempts = 0;
  std::optional<std::string> remote_id;
  std::optional<std::int64_t> credit_cost;
  std::string prompt;  // the first 200 characters
  std::optional<std::string> batch;
  std::optional<std::string> error_class;
  std::optional<std::string> error_message;
  std::int64_t created_at = 0;
  std::int64_t updated_at = 0;
  std::int64_t priority = 0;
  std::optional<std::string> wait_reason;
};
std::vector<JobRow> jobs_page(pqxx::transaction_base& tx, const JobFilter& filter);
// The prompt search (jobs_search.sql): filter.text in the prompts of the jobs with ids
// in [low_id, high_id), newest first, at most filter.limit (filter.before_id is not
// read); with `remote_id_too` also the job whose remote id is the text, wherever it is.
std::vector<JobRow> jobs_search(pqxx::transaction_base& tx, const JobFilter& filter, std::int64_t low_id,
                                std::int64_t high_id, bool remote_id_too);
// The lowest and highest job id; nullopt when there is no job.
std::optional<std::pair<std::int64_t, std::int64_t>> job_id_range(pqxx::transaction_base& tx);

struct Job {
  std::int64_t id = 0;
  std::string state;
  std::string prompt;
  int duration = 5;
  std::string aspect_ratio;
  std::optional<std::string> version;
  std::string mode;
  std::int64_t priority = 0;
  std::optional<std::string> batch;
  std::int64_t attempts = 0;
  std::int64_t max_attempts = 0;
  std::optional<std::string> wait_reason;
  std::optional<std::string> remote_id;
  std::optional<std::string> url;
  std::optional<std::int64_t> credit_cost;
  std::optional<std::string> last_error_json;
  std::optional<std::string> output_path;
  std::optional<std::int64_t> output_bytes;
  std::optional<std::string> output_error_json;
  std::optional<std::string> lease_owner;
  std::optional<std::int64_t> lease_expires_at;
  std::optional<std::int64_t> run_after;
  std::int64_t created_at = 0;
  std::optional<std::int64_t> submitted_at;
  std::optional<std::int64_t> completed_at;
  std::int64_t updated_at = 0;
};
std::optional<Job> job(pqxx::transaction_base& tx, std::int64_t id);

struct JobEvent {
  std::int64_t at = 0;
  std::optional<std::string> from_state;
  std::string to_state;
  std::optional<std::string> instance;
  std::optional<std::string> detail_json;
};
std::vector<JobEvent> job_events(pqxx::transaction_base& tx, std::int64_t job_id);

// klingq.operator_events.
struct OperatorEvent {
  std::int64_t at = 0;
  std::string actor;
  std::string action;
  std::optional<std::string> reason;
  std::string detail_json;
};
std::vector<OperatorEvent> operator_events(pqxx::transaction_base& tx, std::int64_t job_id);
void record_operator_event(pqxx::transaction_base& tx, const std::string& actor, const std::string& action,
                           std::optional<std::int64_t> job_id, const std::optional<std::string>& batch,
                           const std::optional<std::string>& reason, const std::string& detail_json);

}  // namespace klingq::db::console
