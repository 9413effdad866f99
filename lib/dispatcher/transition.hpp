// What happens to a job next, decided without I/O. Every answer klingq gets about a job
// (a submit's outcome, a poll's status, a webhook) comes here with the job's facts, the
// shared limiter state and `now`, and leaves as a Transition: the job's new state, when
// it may run again, why it waits, the error to keep, what the known balance gets back,
// whether dispatch halts, and the API's balance when it said one. The transactions of
// transactions.cpp only write what this decides; the tests drive it with a fake clock.
//
// To change what happens after a 429 (or any other answer), this is the one place.
#pragma once

#include "api/completion.hpp"
#include "api/outcome.hpp"
#include "dispatcher/poll_schedule.hpp"
#include "ratelimit/headers.hpp"
#include "ratelimit/limiter.hpp"
#include "util/clock.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace klingq::dispatcher {

// How a halt reason caused by a proxy's 407 begins: such a halt is lifted when klingqd
// starts (the proxy settings are read only then), a 401's only when the key changes.
inline constexpr const char* proxy_halt_prefix = "407 from the proxy: ";

// klingq.job_state.
enum class JobState { queued, dispatching, submitted, completed, failed, cancelled };
const char* to_string(JobState state);

struct TransitionPolicy {
  Duration retry_base = std::chrono::seconds(2);   // dispatch.retry_base_ms, doubling
  Duration retry_max = std::chrono::seconds(600);  // dispatch.retry_max_ms
  // When to poll (poll_schedule.hpp): poll.first_after_seconds, poll.webhook_grace_seconds
  // (added once when the job expects a webhook), poll.max_interval_seconds.
  PollPolicy poll;
  ratelimit::LimiterSettings limiter;
};

// What the transition needs to know of a claimed job.
struct JobFacts {
  int attempts = 0;      // attempts spent before this one
  int max_attempts = 1;
  std::int64_t expected_cost = 0;  // charged to the known balance at the claim
  bool webhook = false;            // its submit named a webhookUrl
  std::optional<GenerationTimes> generation;  // how long jobs of its kind take, if known
};

struct Transition {
  JobState state = JobState::queued;
  // queued: not claimed again before this (never before now).
  TimePoint run_after{};
  // submitted: the first status poll.
  std::optional<TimePoint> next_poll_at;
  std::string wait_reason;                 // queued: why it waits
  std::optional<std::string> error_json;   // appended to last_error (history kept)
  int attempts_spent = 0;                  // added to the row's attempts
  bool day_counted = false;                // queued: the row's daily count stays (may be accepted)
  std::int64_t cost = 0;                   // submitted: what the API charged, else the expectation
  std::int64_t extra_charge = 0;           // submitted: cost beyond what the claim charged
  // Not sent on to generation: the claim's charge comes back, but only if this instance
  // still held the lease (refund_after_write): whoever took the row refunded it already.
  std::int64_t refund = 0;
  std::optional<std::string> halt_reason;        // a 401: dispatch halts for every instance
  std::optional<std::int64_t> balance_override;  // a 402's body: the API's balance rules
};

// A submit's outcome. Learns from the response's headers (`account` is updated in place:
// observations, a 429's pause, a refused submit's daily count given back).
Transition next_after_submit(const JobFacts& job, const api::Outcome& outcome,
                             const ratelimit::Observation& observation, ratelimit::AccountState& account,
                             TimePoint now, const TransitionPolicy& policy, double unit_random);

// What the balance gets back once the row was (or was not) still ours to change.
std::int64_t refund_after_write(const Transition& transition, bool row_changed);

// A terminal status from a webhook or a poll.
struct CompletionTransition {
  JobState state = JobState::completed;   // completed | failed
  std::optional<std::string> error_json;  // failed: {"class": "remote_failed", ...}
  bool download_due = false;              // outputs.download: fetch the video
  bool refund_cost = false;               // failed: the job's credit_cost comes back
};
// nullopt when the status is not terminal (nothing to record).
std::optional<CompletionTransition> next_after_completion(const api::Completion& completion,
                                                          bool download_outputs);

// A response to a request that was not a submit (a poll, a balance query): what the
// account learns; returns the halt reason of a 401 (or a proxy's 407).
std::optional<std::string> after_response(const api::Outcome& outcome, const ratelimit::Observation& observation,
                                          ratelimit::AccountState& account, TimePoint now,
                                          const TransitionPolicy& policy);

// After the poll number `polls_sent` + 1 of a job whose webhook is late: how long until
// the next. Backs off from 5 s, doubling, up to poll.max_interval_seconds.
Duration next_poll_interval(int polls_sent, const TransitionPolicy& policy);

// The error kept in last_error for an outcome at attempt number `attempt`.
std::string error_json(const api::Outcome& outcome, int attempt);

}  // namespace klingq::dispatcher
