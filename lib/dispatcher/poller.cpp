// Poller: the poll round and the poll coroutine.
#include "dispatcher/poller.hpp"

#include "ops/metrics.hpp"
#include "util/log.hpp"

#include <algorithm>

namespace klingq::dispatcher {
namespace asio = boost::asio;

Poller::Poller(Context& context, Completions& completions)
    : ctx_(context), completions_(completions), wakeup_(context.executor, context.stop) {}

asio::awaitable<void> Poller::run() {
  co_await run_loop(wakeup_, [this] { return !ctx_.stop.requested(); }, [this] { return run_once(); });
}

asio::awaitable<void> Poller::refresh_model() {
  try {
    auto settings = ctx_.options.queue;
    auto model = co_await ctx_.pool.run([settings](pqxx::connection& c) {
      return dispatcher::refresh_generation_model(c, settings);
    });
    const bool sparse = model.samples() < 4 * GenerationModel::min_samples;
    ctx_.generation = std::make_shared<const GenerationModel>(std::move(model));
    model_due_ = std::chrono::steady_clock::now() + (sparse ? std::chrono::seconds(2) : std::chrono::seconds(15));
  } catch (const std::exception& e) {
    ctx_.health.note_database(false, "generation_times", &e);
    model_due_ = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  }
}

asio::awaitable<SteadyDuration> Poller::run_once() {
  SteadyDuration wait = ctx_.options.safety_poll;
  if (std::chrono::steady_clock::now() >= model_due_) co_await refresh_model();
  try {
    auto settings = ctx_.options.queue;
    const std::int64_t wanted = std::max(1, std::min(50, ctx_.options.max_in_flight - ctx_.in_flight));
    auto claim = co_await ctx_.pool.run([settings, wanted, model = ctx_.generation](pqxx::connection& c) {
      return dispatcher::claim_polls(c, settings, wanted, *model);
    });
    ctx_.health.note_database(true, "claim_polls");
    if (claim.newly_stuck > 0) {
      log::warning("jobs_stuck", {{"count", std::to_string(claim.newly_stuck)}});
    }
    for (auto& job : claim.jobs) {
      ++ctx_.in_flight;
      ctx_.tasks.spawn(poll(std::move(job)), "poll");
    }
    wait = std::min(until(claim.retry_at, ctx_.options.safety_poll),
                    std::max<SteadyDuration>(SteadyDuration::zero(), model_due_ - std::chrono::steady_clock::now()));
  } catch (const std::exception& e) {
    ctx_.health.note_database(false, "claim_polls", &e);
  }
  co_return wait;
}

asio::awaitable<void> Poller::poll(PollJob job) {
  auto answered = co_await ctx_.api_call(api::build_status(job.remote_id, ctx_.endpoint()));
  if (!answered) {  // abandoned at the end of the shutdown grace: polled again later
    --ctx_.in_flight;
    co_return;
  }
  const auto& result = *answered;
  ctx_.metrics.api_request_duration(ops::ApiCall::poll).Observe(std::chrono::duration<double>(result.elapsed).count());
  ctx_.metrics.polls().Increment();
  auto status = api::parse_status(result);
  auto observation = observation_of(result);
  try {
    auto settings = ctx_.options.queue;
    auto outcome = status.outcome;
    co_await ctx_.pool.run([settings, outcome, observation](pqxx::connection& c) {
      dispatcher::record_response(c, settings, outcome, observation);
    });
    if (status.outcome.outcome == api::OutcomeClass::accepted && status.terminal) {
      Completion completion{job.remote_id, status.status, status.url, status.metadata_json, status.error, true};
      auto applied = co_await completions_.apply(completion);
      if (applied.result == CompletionResult::applied) {
        log::debug("completed_by_poll", {{"job", std::to_string(applied.job_id)}, {"status", status.status}});
      }
    }
  } catch (const std::exception& e) {
    ctx_.health.note_database(false, "poll", &e);
  }
  --ctx_.in_flight;
}

}  // namespace klingq::dispatcher
