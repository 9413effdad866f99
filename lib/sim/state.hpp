// The simulated account: limits per window, the credit balance, the Idempotency-Key
// map, the jobs and their lifecycle, the counters that catch a cheating client, and the
// seeded random decisions (generation times, failures, injected faults). A pure class:
// every method that depends on time takes the simulated `now`; nothing reads a clock,
// touches a socket or sleeps, so the unit tests drive it with a fake clock.
//
// Semantics (the ASSUMED defaults of API.md):
// - Request window: fixed windows of window_seconds aligned to the account's start.
//   Every authenticated API request counts once; one refused for the window is not
//   counted again.
// - Parallel: accepted jobs not yet terminal. Daily: jobs accepted since 00:00 UTC of
//   the simulated clock.
// - Credits are charged on acceptance and refunded when the job fails.
// - Idempotency-Key: the same key with the same body within 24 h returns the same job
//   without a charge, a slot or a daily count; with another body it is a conflict.
#pragma once

#include "sim/clock.hpp"
#include "sim/generate.hpp"
#include "sim/provider.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace klingq::sim {

enum class Window { rpm, parallel, daily };
const char* to_string(Window window);

// Injected HTTP faults, each a probability per API request (they sum to at most 1).
struct FaultRates {
  double server_error = 0;  // 500 INTERNAL_SERVER_ERROR, nothing processed
  double unavailable = 0;   // 502 or 503, nothing processed
  double slow = 0;          // processed normally, answered slow_ms (real) late
  int slow_ms = 2000;
  double reset_before = 0;  // connection closed unanswered, nothing processed
  double reset_after = 0;   // processed (a job is accepted and charged), then closed unanswered
  double malformed = 0;     // processed, then answered 200 with a truncated JSON body
  double bare_429 = 0;      // 429 without any rate-limit header or Retry-After, nothing processed
};

// Faults of webhook delivery, each a probability per terminal job with a webhookUrl.
struct WebhookFaultRates {
  double drop = 0;       // never sent
  double duplicate = 0;  // sent twice
  double delay = 0;      // sent delay_ms (real) late
  double reorder = 0;    // held back and sent after the next webhook
  int delay_ms = 1000;
};

// The videos themselves, so that downloads (outputs.download) are testable: with bytes
// set, a completed job's url points at the simulator (GET /outputs/<id>.mp4) instead of
// the CDN, and each download may be faulted (probabilities per GET, summing to at most 1).
struct OutputSettings {
  std::int64_t bytes = 0;     // size of every video; 0 = not served, urls name the CDN
  double server_error = 0;    // answered 500, no body
  double truncate = 0;        // the full Content-Length announced, half the body sent, then a reset
  int redirects = 0;          // each video is reached through this many 302s (a CDN's hops)
};

// Everything the command line and /_sim/config set.
struct Settings {
  Plan plan = Plan::free;
  std::optional<std::int64_t> rpm;       // overrides the plan's requests per window; 0 = unlimited
  std::optional<std::int64_t> parallel;  // overrides the plan's parallel jobs; 0 = unlimited
  std::optional<std::int64_t> daily;     // overrides the plan's jobs per day; 0 = unlimited
  std::int64_t credits = 100000;         // balance at start (and after a reset)
  double window_seconds = 60;            // length of the request window, simulated seconds
  // The provider's day: it begins this many simulated seconds after 00:00 UTC (a UTC+8
  // provider: 16 h), and whether responses carry X-RateLimit-Reset-Day (providers that
  // report the day's count may not say when it ends).
  std::int64_t day_start_seconds = 0;
  bool reset_day_header = true;
  double gen_min_seconds = 30;           // generation time range, simulated seconds
  double gen_max_seconds = 90;
  double fail_rate = 0;                  // probability that a job ends `failed`
  FaultRates faults;
  WebhookFaultRates webhook_faults;
  OutputSettings outputs;
  std::uint64_t seed = 1;                // every random decision derives from it
  CostTable cost;                        // credits per video (provider.hpp)

  // The plan's limits with the overrides applied; 0 = unlimited.
  PlanLimits limits() const;
  // Throws std::invalid_argument naming the setting (command-line spelling).
  void validate() const;
};

// An error as the API reports it: HTTP status, extensions.code, message, extras.
struct ApiError {
  unsigned status = 500;
  std::string code;  // RATE_LIMITED, INSUFFICIENT_CREDITS, BAD_USER_INPUT, ...
  std::string message;
  boost::json::object extensions;  // besides "code"
  std::optional<Window> window;    // set on RATE_LIMITED: which window refused
  std::optional<TimePoint> retry_at;  // set on RATE_LIMITED: when (simulated) it frees up
};

enum class JobStatus { processing, completed, failed };
const char* to_string(JobStatus status);

struct Job {
  std::string id;
  std::string idempotency_key;  // "" when the request had none
  GenerateParams params;
  std::int64_t credit_cost = 0;
  JobStatus status = JobStatus::processing;
  TimePoint created_at;
  TimePoint due_at;                      // when generation ends (simulated)
  std::optional<TimePoint> completed_at;  // set when terminal
  bool will_fail = false;                // decided at acceptance, from the seed
  std::string error;                     // set when failed
  std::string url;                       // set when completed
};

// What the account answers a submit with.
struct Submitted {
  const Job* job;  // valid until the next call that mutates the account
  bool replay;     // true: an earlier job returned for the same Idempotency-Key
};
using SubmitOutcome = std::variant<Submitted, ApiError>;

// The state of each window, for the X-RateLimit-* headers. limit 0 = unlimited.
struct Usage {
  PlanLimits limits;
  std::int64_t window_used = 0;   // requests counted in the current request window
  TimePoint window_reset;         // end of the current request window (simulated)
  std::int64_t day_used = 0;      // jobs accepted since the day began
  TimePoint day_reset;            // next start of the provider's day (simulated)
  std::int64_t processing = 0;    // jobs not yet terminal
  std::optional<TimePoint> next_slot;  // earliest end of a processing job
};

enum class OutputFault { none, server_error, truncate };

// The bytes of job `job_id`'s video: `size` bytes that depend only on the id, so that a
// test can tell a complete, correct download from a truncated or mixed-up one.
std::string output_content(std::string_view job_id, std::size_t size);

enum class Fault { none, server_error, bad_gateway, unavailable, slow, reset_before, reset_after,
                   malformed, bare_429 };
const char* to_string(Fault fault);

struct WebhookFaults {
  bool drop = false;
  bool duplicate = false;
  bool delay = false;
  bool reorder = false;
};

// The counters of /_sim/stats.
struct Stats {
  std::int64_t requests = 0;          // every API request (not /_sim), whatever its fate
  std::int64_t accepted = 0;          // jobs created (replays excluded)
  std::int64_t rate_limited_rpm = 0;
  std::int64_t rate_limited_parallel = 0;
  std::int64_t rate_limited_daily = 0;
  std::int64_t payment_required = 0;
  std::int64_t unauthorized = 0;
  std::int64_t bad_request = 0;       // validation and GraphQL errors (400)
  std::int64_t not_found = 0;
  std::int64_t conflicts = 0;         // Idempotency-Key reused with another body (409)
  std::int64_t server_errors = 0;     // 5xx answered (injected faults)
  std::int64_t duplicate_charges = 0;  // a second charge for one Idempotency-Key: must stay 0
  std::int64_t idempotent_replays = 0;
  std::int64_t max_parallel_seen = 0;
  std::int64_t max_window_requests_seen = 0;  // most requests counted in one request window
  std::int64_t credits_spent = 0;     // charged minus refunded
  std::int64_t credits_refunded = 0;
  std::unordered_map<std::string, std::int64_t> faults;  // injected, by name
  std::int64_t webhooks_attempts = 0;   // POSTs tried (retries and duplicates included)
  std::int64_t webhooks_delivered = 0;  // POSTs answered 2xx
  std::int64_t webhooks_failed = 0;     // deliveries given up after the retries
  std::int64_t webhooks_dropped = 0;
  std::int64_t webhooks_duplicated = 0;
  std::int64_t webhooks_delayed = 0;
  std::int64_t webhooks_reordered = 0;
  std::int64_t output_requests = 0;       // GET /outputs/... (not API requests: no limits)
  std::int64_t outputs_served = 0;        // complete videos sent
  std::int64_t outputs_truncated = 0;     // injected: cut off mid-body
  std::int64_t output_server_errors = 0;  // injected: 500
  std::int64_t output_not_found = 0;      // unknown, unfinished or failed jobs
  std::int64_t output_redirects = 0;      // 302s answered on the way to a video
};

class Account {
 public:
  Account(Settings settings, TimePoint now);

  const Settings& settings() const { return settings_; }
  // Replaces the settings (limits, faults, ...) keeping jobs, balance and counters.
  // Throws std::invalid_argument like Settings::validate.
  void configure(Settings settings);
  // Sets the credit balance.
  void set_balance(std::int64_t balance) { balance_ = balance; }
  // Back to the state at start with `settings`: fresh windows aligned to now, jobs,
  // keys and counters cleared, the random streams reseeded.
  void reset(Settings settings, TimePoint now);

  // Moves jobs whose generation time has passed to their terminal state (refunding
  // failures) and queues them for take_finished(). Every method below calls it first.
  void advance(TimePoint now);
  // Jobs that became terminal since the last call, in the order they finished.
  std::vector<const Job*> take_finished();
  // When the next processing job ends (simulated), for the server's timer.
  std::optional<TimePoint> next_due() const;

  // Counts one authenticated request against the request window, or refuses it
  // (RATE_LIMITED, window rpm) without counting it.
  std::optional<ApiError> admit_request(TimePoint now);
  // Idempotency, the daily and parallel limits, credits, then acceptance. The request
  // must already have been admitted. key: nullptr when the request had none.
  SubmitOutcome submit(TimePoint now, const std::string* key, GenerateParams params);

  const Job* find_job(const std::string& id) const;
  std::int64_t balance() const { return balance_; }
  Usage usage(TimePoint now);

  // One draw per API request: which fault, if any, to inject.
  Fault draw_fault();
  WebhookFaults draw_webhook_faults();
  OutputFault draw_output_fault();

  // Where this simulator serves videos ("http://127.0.0.1:PORT"), set once it is bound;
  // completed jobs' urls point there while settings().outputs.bytes > 0. Kept by reset().
  void set_output_origin(std::string origin) { output_origin_ = std::move(origin); }

  Stats& stats() { return stats_; }
  const Stats& stats() const { return stats_; }
  // Jobs by status, and the number of live Idempotency-Keys.
  std::int64_t jobs_with(JobStatus status) const;
  std::size_t accepted_keys() const { return keys_.size(); }
  // Every job in creation order.
  const std::vector<std::string>& job_order() const { return job_order_; }

 private:
  struct KeyEntry {
    std::string job_id;
    std::string fingerprint;
    TimePoint first_seen;
  };
  void roll_windows(TimePoint now);
  std::string new_job_id();
  ApiError rate_limited(Window window, std::int64_t limit, TimePoint retry_at) const;

  Settings settings_;
  TimePoint window_origin_;            // request windows are aligned to this instant
  std::int64_t window_index_ = 0;      // which window window_used_ belongs to
  std::int64_t window_used_ = 0;
  std::int64_t day_index_ = 0;         // provider days since the epoch of day_used_
  std::int64_t day_used_ = 0;
  std::int64_t balance_ = 0;
  std::unordered_map<std::string, Job> jobs_;
  std::vector<std::string> job_order_;
  std::set<std::pair<TimePoint, std::string>> processing_;  // by due time
  std::vector<std::string> finished_;  // terminal since the last take_finished()
  std::int64_t completed_ = 0;         // jobs by terminal status (stats are polled often)
  std::int64_t failed_ = 0;
  std::unordered_map<std::string, KeyEntry> keys_;
  std::unordered_map<std::string, std::int64_t> charges_by_key_;  // never expires
  Stats stats_;
  std::mt19937_64 job_random_;      // generation times, failures
  std::mt19937_64 fault_random_;    // HTTP faults
  std::mt19937_64 webhook_random_;  // webhook faults
  std::mt19937_64 id_random_;       // job ids
  std::mt19937_64 output_random_;   // download faults
  std::string output_origin_;
};

}  // namespace klingq::sim
