// Claimer: the claim round and the submit coroutine.
#include "dispatcher/claimer.hpp"

#include "ops/metrics.hpp"
#include "util/log.hpp"

#include <algorithm>

namespace klingq::dispatcher {
namespace asio = boost::asio;
using namespace std::chrono_literals;

Claimer::Claimer(Context& context, Recorder& recorder)
    : ctx_(context), recorder_(recorder), random_(std::random_device{}()) {}

asio::awaitable<void> Claimer::run() {
  co_await run_loop(ctx_.claim_wanted, [this] { return !ctx_.stop.requested(); }, [this] { return run_once(); });
}

asio::awaitable<SteadyDuration> Claimer::run_once() {
  ctx_.claim_wanted.take();  // a wake-up that came before this round is answered by it
  const int capacity = ctx_.options.max_in_flight - ctx_.in_flight;
  SteadyDuration wait = ctx_.options.safety_poll;
  if (capacity > 0) {
    const std::int64_t wanted = std::min(capacity, ctx_.options.claim_batch);
    ClaimResult result;
    bool ok = false;
    try {
      auto settings = ctx_.options.queue;
      // Expired leases (a crashed instance) are looked for at most once a second:
      // leases last minutes, and the claim is the hot path.
      const auto now = std::chrono::steady_clock::now();
      const bool reap = now - last_reap_ >= 1s;
      if (reap) last_reap_ = now;
      result = co_await ctx_.pool.run([settings, wanted, reap](pqxx::connection& c) {
        return dispatcher::claim(c, settings, wanted, reap);
      });
      ok = true;
      ctx_.health.note_database(true, "claim");
    } catch (const std::exception& e) {
      ctx_.health.note_database(false, "claim", &e);
      wait = std::min<SteadyDuration>(ctx_.options.safety_poll, 1s);
    }
    if (ok) {
      log::debug("claimed", {{"jobs", std::to_string(result.jobs.size())}, {"held_by", to_string(result.held_by)}});
      const bool newly_daily = result.held_by == Hold::daily && ctx_.health.hold != Hold::daily;
      ctx_.health.note_hold(result.held_by);
      ctx_.health.halted = result.held_by == Hold::halted;
      ctx_.health.day_reset_assumed = result.day_reset_assumed;
      // Held by a daily cap whose end is only assumed: the credit refresher looks at the
      // API's count at once, then at least once a minute (credit_refresher.cpp).
      if (newly_daily && result.day_reset_assumed) ctx_.credits_wanted.notify();
      if (result.held_by == Hold::credit || result.held_by == Hold::no_balance) {
        ctx_.credits_wanted.notify();  // a fresh balance soon: a top-up ends the hold
      }
      for (auto& job : result.jobs) {
        recorder_.expect();
        ctx_.tasks.spawn(submit(std::move(job)), "submit");
      }
      if (static_cast<std::int64_t>(result.jobs.size()) == wanted) co_return SteadyDuration::zero();  // maybe more
      wait = until(result.retry_at, ctx_.options.safety_poll);
    }
  }
  if (ctx_.claim_wanted.pending()) co_return SteadyDuration::zero();
  co_return wait;
}

asio::awaitable<void> Claimer::submit(ClaimedJob job) {
  // The row's pinned webhookUrl, which may be another instance's (see ClaimedJob).
  auto job_endpoint = ctx_.endpoint();
  job_endpoint.webhook_url = job.webhook_url;
  auto request = api::build_submit(job.spec, job_endpoint);
  auto answered = co_await ctx_.api_call(std::move(request));
  if (!answered) {
    // Abandoned at the end of the shutdown grace: the lease is released, and the next
    // submit of the row (same key, same body) finds whatever the API did with this one.
    recorder_.forget();
    co_return;
  }
  const auto& result = *answered;
  auto& metrics = ctx_.metrics;
  metrics.api_request_duration(ops::ApiCall::submit).Observe(std::chrono::duration<double>(result.elapsed).count());
  auto outcome = api::classify_submit(result);
  auto observation = observation_of(result);
  metrics.submissions(outcome.outcome).Increment();
  if (outcome.outcome == api::OutcomeClass::rate_limited) {
    metrics.rate_limited(outcome.window.value_or(ratelimit::Window::rpm)).Increment();
    log::warning("rate_limited", {{"job", std::to_string(job.id)},
                                  {"window", ratelimit::to_string(outcome.window.value_or(ratelimit::Window::rpm))}});
  } else if (outcome.outcome == api::OutcomeClass::unauthorized) {
    log::error(outcome.http_status == 407 ? "proxy_auth_required" : "api_key_refused",
               {{"job", std::to_string(job.id)}, {"message", outcome.message}});
  } else if (outcome.outcome == api::OutcomeClass::no_credit) {
    log::warning("insufficient_credits", {{"job", std::to_string(job.id)},
                                          {"available", outcome.credits_available ? std::to_string(*outcome.credits_available) : "?"}});
  } else if (outcome.outcome != api::OutcomeClass::accepted) {
    log::info("submit_failed", {{"job", std::to_string(job.id)},
                                {"class", api::to_string(outcome.outcome)},
                                {"status", std::to_string(outcome.http_status)},
                                {"message", outcome.message}});
  }
  recorder_.add(SubmitInput{std::move(job), std::move(outcome), observation, unit_random()});
}

}  // namespace klingq::dispatcher
