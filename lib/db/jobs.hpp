// klingq.jobs statements of the dispatcher: claim, record, poll, complete, release.
// Typed statements only, plain values in and row structs out; which rows to take and
// what state comes next is decided in lib/dispatcher. A function that changes a leased
// row (mark_*, requeue) returns false when this instance no longer held its lease.
#pragma once

#include "db/prices.hpp"
#include "util/clock.hpp"

#include <pqxx/transaction_base>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace klingq::db::jobs {

// Expired leases (a crashed instance) back to queued; returns their claims' expected cost.
std::int64_t reap_expired(pqxx::transaction_base& tx, const Prices& prices);

// Rows dispatching plus rows submitted (the latter counted up to submitted_cap, 0 = none).
std::int64_t count_in_flight(pqxx::transaction_base& tx, std::int64_t submitted_cap);

// Rows dispatching (sent, answer not recorded), of every instance.
std::int64_t count_dispatching(pqxx::transaction_base& tx);

// A runnable row in claim order (priority DESC, run_after, id), locked SKIP LOCKED.
struct Claimable {
  std::int64_t id = 0;
  std::int64_t expected_cost = 0;
  TimePoint run_after;
  std::optional<std::string> batch;
  bool day_counted = false;  // an earlier claim's lost answer was counted against the day
};
std::vector<Claimable> select_claimable(pqxx::transaction_base& tx, std::int64_t limit, const Prices& prices);

// Queued rows of a spent batch get wait_reason 'batch budget spent ...'.
void mark_batch_waiting(pqxx::transaction_base& tx, const std::string& batch);

// A row moved to dispatching, with what the submit needs.
struct Claimed {
  std::int64_t id = 0;
  std::string prompt;
  int duration = 5;
  std::string aspect_ratio;
  std::optional<std::string> version;
  std::string mode;
  std::string options_json;
  std::string idempotency_key;
  int attempts = 0;
  int max_attempts = 1;
  TimePoint created_at;
  std::string webhook_url;  // pinned by the row's first claim ("" = none)
};
std::vector<Claimed> claim(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids,
                           const std::string& instance, double lease_seconds, const std::string& webhook_url);

// An accepted submit to record.
struct Accepted {
  std::int64_t id = 0;
  std::string remote_id;
  std::int64_t cost = 0;
  double first_poll_seconds = 0;  // the first status poll is due this long after now()
};
// Rows still leased by `instance` become submitted; returns the ids of those.
std::vector<std::int64_t> mark_submitted(pqxx::transaction_base& tx, const std::vector<Accepted>& accepted,
                                         const std::string& instance);
bool mark_failed(pqxx::transaction_base& tx, std::int64_t id, const std::string& instance,
                 const std::string& error_json, int attempts_spent);
bool requeue(pqxx::transaction_base& tx, std::int64_t id, const std::string& instance,
             const std::optional<std::string>& error_json, int attempts_spent, TimePoint run_after,
             const std::string& wait_reason, bool day_counted);

// A submitted row reaches a terminal state (state: "completed" | "failed").
struct Completed {
  std::int64_t id = 0;
  std::optional<std::int64_t> credit_cost;
  std::optional<double> submit_to_complete_seconds;
};
std::optional<Completed> complete(pqxx::transaction_base& tx, const std::string& remote_id, const char* state,
                                  const std::string& url, const std::string& metadata_json,
                                  const std::optional<std::string>& error_json, bool download_due,
                                  bool by_poll);
// The state of the row carrying remote_id, if any.
std::optional<std::string> state_by_remote_id(pqxx::transaction_base& tx, const std::string& remote_id);

struct DuePoll {
  std::int64_t id = 0;
  std::string remote_id;
  int polls = 0;  // polls already sent
  std::string mode;
  int duration = 5;
  std::string version;  // "" = the API's default
  TimePoint submitted_at;
  bool webhook = false;  // its submit named a webhookUrl
};
std::vector<DuePoll> select_due_polls(pqxx::transaction_base& tx, std::int64_t limit);
// The earliest next_poll_at of a submitted row, if any.
std::optional<TimePoint> next_poll_at(pqxx::transaction_base& tx);
// A poll of the row is being sent now (polled_at); the next is due in seconds_until_next.
void schedule_poll(pqxx::transaction_base& tx, std::int64_t id, double seconds_until_next);
// Flags (event + wait_reason) rows submitted longer than horizon_seconds ago; returns how many.
std::int64_t flag_stuck(pqxx::transaction_base& tx, double horizon_seconds);
std::int64_t count_stuck(pqxx::transaction_base& tx);

struct Released {
  std::int64_t count = 0;
  std::int64_t expected_cost = 0;
};
// Unsent rows leased by `instance` back to queued (shutdown).
Released release_leases(pqxx::transaction_base& tx, const std::string& instance, const Prices& prices);

// NOTIFY klingq_jobs (delivered at commit).
void notify(pqxx::transaction_base& tx, const std::string& payload);

}  // namespace klingq::db::jobs
