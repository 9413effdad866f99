// See transition.hpp. Pure: no I/O, time and randomness come in as parameters.
#include "dispatcher/transition.hpp"

#include <boost/json.hpp>

#include <algorithm>

namespace klingq::dispatcher {
namespace json = boost::json;
using api::OutcomeClass;

const char* to_string(JobState state) {
  switch (state) {
    case JobState::queued: return "queued";
    case JobState::dispatching: return "dispatching";
    case JobState::submitted: return "submitted";
    case JobState::completed: return "completed";
    case JobState::failed: return "failed";
    case JobState::cancelled: return "cancelled";
  }
  return "queued";
}

std::string error_json(const api::Outcome& outcome, int attempt) {
  json::object error{{"class", api::to_string(outcome.outcome)},
                     {"status", outcome.http_status},
                     {"message", outcome.message},
                     {"attempt", attempt}};
  if (!outcome.code.empty()) error["code"] = outcome.code;
  return json::serialize(error);
}

namespace {

Transition failed(const api::Outcome& outcome, int attempt, std::int64_t refund) {
  Transition t;
  t.state = JobState::failed;
  t.error_json = error_json(outcome, attempt);
  t.attempts_spent = 1;
  t.refund = refund;
  return t;
}

Transition requeued(TimePoint run_after, std::string why, std::int64_t refund) {
  Transition t;
  t.state = JobState::queued;
  t.run_after = run_after;
  t.wait_reason = std::move(why);
  t.refund = refund;
  return t;
}

std::string halt_reason_of(const api::Outcome& outcome) {
  if (outcome.http_status == 407) return proxy_halt_prefix + outcome.message.substr(0, 300);
  return "401 from the API: " + outcome.message.substr(0, 200);
}

}  // namespace

Transition next_after_submit(const JobFacts& job, const api::Outcome& outcome,
                             const ratelimit::Observation& observation, ratelimit::AccountState& account,
                             TimePoint now, const TransitionPolicy& policy, double unit_random) {
  if (outcome.http_status != 0) ratelimit::observe(account, observation, now, policy.limiter);
  const int attempt = job.attempts + 1;
  if (outcome.outcome == OutcomeClass::accepted) {
    Transition t;
    t.state = JobState::submitted;
    t.cost = outcome.credit_cost.value_or(job.expected_cost);
    t.extra_charge = t.cost - job.expected_cost;
    t.next_poll_at = next_poll_at(PollFacts{now, 0, job.webhook, job.generation}, now, policy.poll);
    return t;
  }
  // Refused for sure: the submit was not a job of the day. A transient error may hide an
  // accepted job: its count stays, and the row's resubmit is not counted again.
  if (outcome.outcome != OutcomeClass::transient) ratelimit::return_unaccepted(account, 1);
  switch (outcome.outcome) {
    case OutcomeClass::accepted:
      break;
    case OutcomeClass::invalid_job:  // 400, BAD_USER_INPUT, 409: the job itself is wrong
      return failed(outcome, attempt, job.expected_cost);
    case OutcomeClass::transient: {
      if (attempt >= job.max_attempts) return failed(outcome, attempt, job.expected_cost);
      auto delay = api::retry_delay(attempt, policy.retry_base, policy.retry_max, unit_random);
      auto t = requeued(now + delay, "retrying after a transient error", job.expected_cost);
      t.error_json = error_json(outcome, attempt);
      t.attempts_spent = 1;
      t.day_counted = true;
      return t;
    }
    case OutcomeClass::rate_limited: {
      // Not the job's fault: no attempt spent, no error kept; the window pauses.
      ratelimit::on_rate_limited(account, outcome.window, observation, now, policy.limiter);
      auto window = outcome.window.value_or(ratelimit::Window::rpm);
      auto until = window == ratelimit::Window::rpm     ? account.rpm_paused_until
                   : window == ratelimit::Window::daily ? account.day_paused_until
                                                        : account.parallel_paused_until;
      return requeued(until.value_or(now), std::string("rate limited (") + ratelimit::to_string(window) + ")",
                      job.expected_cost);
    }
    case OutcomeClass::no_credit: {
      // The API's word replaces the known balance (less the other unanswered claims), so
      // this row's own charge needs no refund.
      auto t = requeued(now, "waiting for credit (402 from the API)", 0);
      t.balance_override = outcome.credits_available.value_or(0);
      return t;
    }
    case OutcomeClass::unauthorized: {
      auto t = requeued(now,
                        outcome.http_status == 407 ? "dispatch halted: the proxy refused the credentials (407)"
                                                   : "dispatch halted: API key refused (401)",
                        job.expected_cost);
      t.halt_reason = halt_reason_of(outcome);
      return t;
    }
  }
  return requeued(now, "retrying after a transient error", job.expected_cost);
}

std::int64_t refund_after_write(const Transition& transition, bool row_changed) {
  if (!row_changed || transition.state == JobState::submitted) return 0;
  return std::max<std::int64_t>(0, transition.refund);
}

std::optional<CompletionTransition> next_after_completion(const api::Completion& completion,
                                                          bool download_outputs) {
  CompletionTransition t;
  if (completion.status == "completed") {
    t.state = JobState::completed;
    t.download_due = download_outputs && !completion.url.empty();
  } else if (completion.status == "failed") {
    t.state = JobState::failed;
    t.error_json = json::serialize(json::object{
        {"class", "remote_failed"}, {"message", completion.error.empty() ? "failed" : completion.error}});
    t.refund_cost = true;  // the provider gives a failed job's credits back
  } else {
    return std::nullopt;
  }
  return t;
}

std::optional<std::string> after_response(const api::Outcome& outcome, const ratelimit::Observation& observation,
                                          ratelimit::AccountState& account, TimePoint now,
                                          const TransitionPolicy& policy) {
  if (outcome.http_status != 0) ratelimit::observe(account, observation, now, policy.limiter);
  if (outcome.outcome == OutcomeClass::rate_limited) {
    ratelimit::on_rate_limited(account, outcome.window, observation, now, policy.limiter);
  }
  if (outcome.outcome == OutcomeClass::unauthorized) return halt_reason_of(outcome);
  return std::nullopt;
}

Duration next_poll_interval(int polls_sent, const TransitionPolicy& policy) {
  return late_webhook_backoff(polls_sent, policy.poll);
}

}  // namespace klingq::dispatcher
