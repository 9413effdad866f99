// Recorder: the writers' rounds and the bookkeeping of submits in flight.
#include "dispatcher/recorder.hpp"

#include "ops/metrics.hpp"
#include "util/log.hpp"

#include <iterator>
#include <memory>

namespace klingq::dispatcher {
namespace asio = boost::asio;
using namespace std::chrono_literals;

Recorder::Recorder(Context& context) : ctx_(context), writers_{Writer(context), Writer(context)} {}

void Recorder::expect() {
  ++outstanding_;
  ++ctx_.in_flight;
}

void Recorder::add(SubmitInput input) {
  queue_.push_back(std::move(input));
  wake_writers();  // a writer records it with whatever else has arrived
}

void Recorder::forget() { finished(1); }

void Recorder::wake_writers() {
  for (auto& writer : writers_) writer.wakeup.notify();
}

void Recorder::finished(std::size_t count) {
  outstanding_ -= count;
  ctx_.in_flight -= static_cast<int>(count);
  // At shutdown the writers wait for the last outcome; after it they may end.
  if (outstanding_ == 0 && ctx_.stop.requested()) wake_writers();
}

asio::awaitable<void> Recorder::run(std::size_t writer) {
  co_await run_loop(
      writers_[writer].wakeup, [this] { return !ctx_.stop.requested() || outstanding_ > 0; },
      [this, writer] { return run_once(writer); });
}

asio::awaitable<SteadyDuration> Recorder::run_once(std::size_t index) {
  auto& writer = writers_[index];
  if (queue_.empty()) co_return std::chrono::hours(1);
  const auto take = static_cast<std::ptrdiff_t>(writer.alone > 0 ? 1 : std::min<std::size_t>(queue_.size(), 1000));
  auto group = std::make_shared<std::vector<SubmitInput>>(std::make_move_iterator(queue_.begin()),
                                                          std::make_move_iterator(queue_.begin() + take));
  queue_.erase(queue_.begin(), queue_.begin() + take);
  try {
    auto settings = ctx_.options.queue;
    auto records = co_await ctx_.pool.run([settings, group, model = ctx_.generation](pqxx::connection& c) {
      return dispatcher::record_submits(c, settings, *group, *model);
    });
    ctx_.health.note_database(true, "record_submit");
    writer.failures = 0;
    if (writer.alone > 0) --writer.alone;
    for (std::size_t i = 0; i < records.size(); ++i) recorded((*group)[i], records[i]);
    ctx_.claim_wanted.notify();
    co_return SteadyDuration::zero();
  } catch (const std::exception& e) {
    ctx_.health.note_database(false, "record_submit", &e);
    ++writer.failures;
  }
  // Retry while the database is away: the API may have charged for these jobs, and
  // only their rows know it. When we give up (shutdown), the leases expire and the
  // resubmit with the same idempotency key finds the same job.
  if (ctx_.stop.requested() && writer.failures > 3) {
    const auto lost = queue_.size() + group->size();
    log::warning("shutdown_with_unrecorded_submits", {{"count", std::to_string(lost)}});
    queue_.clear();
    finished(lost);
    co_return SteadyDuration::zero();
  }
  if (group->size() > 1) writer.alone = group->size();
  queue_.insert(queue_.begin(), std::make_move_iterator(group->begin()), std::make_move_iterator(group->end()));
  co_await sleep_for(backoff(writer.failures, 100ms, 3s));
  co_return SteadyDuration::zero();
}

void Recorder::recorded(const SubmitInput& input, const SubmitRecord& record) {
  const auto& [job, outcome, observation, r] = input;
  if (outcome.outcome == api::OutcomeClass::accepted && !record.new_state.empty()) {
    ctx_.metrics.credit_spent().Increment(static_cast<double>(outcome.credit_cost.value_or(job.expected_cost)));
    ctx_.metrics.insert_to_submit().Observe(std::chrono::duration<double>(Clock::now() - job.created_at).count());
    log::debug("submitted", {{"job", std::to_string(job.id)}, {"remote_id", outcome.remote_id}});
  }
  if (record.new_state.empty()) log::warning("lease_lost", {{"job", std::to_string(job.id)}});
  if (record.completed_early && record.new_state == "completed") ctx_.downloads_wanted.notify();
  finished(1);
}

}  // namespace klingq::dispatcher
