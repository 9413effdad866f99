// Every transaction klingqd runs against its schema, one function each. A transaction
// locks what it needs, runs typed statements of lib/db, asks the pure decisions
// (ratelimit's limiter, credit's gate, transition.hpp) what to do, writes that back and
// commits. The limiter and credit state live in the klingq.account row, locked by the
// transactions that use it: that is what makes the limits hold across several
// instances. The services call these through db::Pool; tests call them directly on a
// real database.
#pragma once

#include "api/completion.hpp"
#include "api/protocol.hpp"
#include "config/config.hpp"
#include "dispatcher/poll_schedule.hpp"
#include "ratelimit/limiter.hpp"
#include "util/clock.hpp"

#include <pqxx/connection>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace klingq::dispatcher {

// Options every transaction needs, derived from the config once.
struct QueueSettings {
  std::string account = "default";
  std::string instance;                 // lease owner and events' instance
  std::string webhook_url;              // webhook.public_url of this instance ("" = none)
  ratelimit::LimiterSettings limiter;
  config::CostTable cost;
  std::int64_t credit_reserve = 0;
  Duration starvation = std::chrono::seconds(600);
  Duration lease = std::chrono::seconds(120);
  Duration retry_base = std::chrono::seconds(2);
  Duration retry_max = std::chrono::seconds(600);
  // The poll schedule (poll_schedule.hpp): the first poll without history, the grace a
  // webhook gets (once, when the job expects one), the longest wait between polls.
  Duration first_poll = std::chrono::seconds(5);
  Duration webhook_grace = std::chrono::seconds(30);
  Duration max_poll_interval = std::chrono::seconds(600);
  Duration min_poll_interval = std::chrono::seconds(2);
  // Generation-time history: the window and the completions per kind it keeps.
  Duration generation_window = std::chrono::hours(1);
  std::int64_t generation_samples = 500;
  Duration poll_horizon = std::chrono::hours(2);
  config::PlanLimits plan{10, 1, 100};
  bool download_outputs = false;  // outputs.download: completions become due for download
};

// A claimed row, ready to send.
struct ClaimedJob {
  std::int64_t id = 0;
  api::JobSpec spec;
  int attempts = 0;       // attempts already spent before this one
  int max_attempts = 1;
  std::int64_t expected_cost = 0;
  TimePoint created_at;
  // The webhookUrl every submit of this row sends ("" = none): pinned by the row's
  // first claim, so a resubmit from another instance repeats the same body.
  std::string webhook_url;
};

enum class Hold { none, halted, paused, rpm, daily, parallel, credit, no_balance };
const char* to_string(Hold hold);

struct ClaimResult {
  std::vector<ClaimedJob> jobs;
  Hold held_by = Hold::none;              // why fewer (or none) were claimed
  TimePoint retry_at = TimePoint::max();  // when a limit frees a token (max: on an event)
  bool queue_empty = false;               // no runnable row was waiting
  bool day_reset_assumed = true;          // no Reset-Day header said when the day ends
};

// Creates the account row from the plan if missing; while limits still come from the
// plan (no header seen yet) a changed plan in the config is applied.
void ensure_account(pqxx::connection& connection, const QueueSettings& settings);

// Claims at most `wanted` rows that every limit and the credit gate allow right now, and
// charges their expected cost to the known balance. With reap_leases, rows whose lease
// expired (a crashed instance) come back to the queue first, their charge given back.
ClaimResult claim(pqxx::connection& connection, const QueueSettings& settings, std::int64_t wanted,
                  bool reap_leases = true);

// What the API said about one claimed row, in the order the responses arrived.
struct SubmitInput {
  ClaimedJob job;
  api::Outcome outcome;
  ratelimit::Observation observation;
  double unit_random = 0.5;  // jitter of a retry's backoff
};
// The row's new state ("submitted", "queued", "failed", or "" when this instance no
// longer held the lease).
struct SubmitRecord {
  std::string new_state;
  bool completed_early = false;  // a webhook had arrived before the submit was recorded
};
// Records a group of responses in one transaction (group commit: the responses that
// arrived while the previous group was being written) and updates the shared limiter
// from their headers. The account row is locked once for the group, and only when a
// response says something about limits or was not an acceptance. Returns one record per
// input, in order.
// `model` places each accepted job's first poll.
std::vector<SubmitRecord> record_submits(pqxx::connection& connection, const QueueSettings& settings,
                                         const std::vector<SubmitInput>& inputs,
                                         const GenerationModel& model = GenerationModel{});

// Headers (and a 429) from a request that was not a submit.
void record_response(pqxx::connection& connection, const QueueSettings& settings,
                     const api::Outcome& outcome, const ratelimit::Observation& observation);

// Takes one request token for a non-submit request; nullopt = granted, else retry time.
std::optional<TimePoint> take_request_token(pqxx::connection& connection,
                                            const QueueSettings& settings);

struct PollJob {
  std::int64_t id = 0;
  std::string remote_id;
};
struct PollClaim {
  std::vector<PollJob> jobs;
  TimePoint retry_at = TimePoint::max();
  std::int64_t newly_stuck = 0;
};
// Jobs whose poll is due, as many as the request budget allows polls now (poll_allowance:
// the poll share while submits want tokens); their next poll is scheduled from `model` in
// the same transaction.
PollClaim claim_polls(pqxx::connection& connection, const QueueSettings& settings,
                      std::int64_t wanted, const GenerationModel& model = GenerationModel{});

// Recomputes klingq.generation_times from the recent completions and reads it back.
GenerationModel refresh_generation_model(pqxx::connection& connection, const QueueSettings& settings);

// A terminal status from a webhook or a poll: api::Completion (api/completion.hpp).
using api::Completion;
enum class CompletionResult { applied, duplicate, unknown_stored };
struct CompletionOutcome {
  CompletionResult result = CompletionResult::unknown_stored;
  std::int64_t job_id = 0;
  std::optional<double> submit_to_complete_seconds;
};
// Moves a submitted job to its terminal state (never a terminal one back), refunds a
// failed job's credits into the known balance, and NOTIFYs so every instance sees the
// freed parallel slot. An id no row carries yet is kept in webhook_inbox.
CompletionOutcome apply_completion(pqxx::connection& connection, const QueueSettings& settings,
                                   const Completion& completion);

void set_balance(pqxx::connection& connection, const QueueSettings& settings, std::int64_t balance);
// Unsent rows this instance holds go back to the queue (shutdown).
std::int64_t release_leases(pqxx::connection& connection, const QueueSettings& settings);
// Clears a 401 halt (after the key was replaced).
void clear_halt(pqxx::connection& connection, const QueueSettings& settings);
// Clears a halt a proxy's 407 caused (start-up: the proxy settings may have been
// fixed, and they are read only at start). True when one was cleared.
bool clear_proxy_halt(pqxx::connection& connection, const QueueSettings& settings);

struct Snapshot {
  ratelimit::AccountState limits;
  std::optional<std::int64_t> balance;
  std::int64_t in_flight = 0;
  std::int64_t reserved = 0;
  bool halted = false;
  bool paused = false;
  std::vector<std::pair<std::string, std::int64_t>> jobs_by_state;
  std::int64_t instances = 0;
  std::int64_t stuck = 0;
};
// Upserts this instance's heartbeat and reads what metrics and STATUS= show.
Snapshot heartbeat(pqxx::connection& connection, const QueueSettings& settings,
                   const std::string& status_json);
void remove_instance(pqxx::connection& connection, const QueueSettings& settings);

}  // namespace klingq::dispatcher
