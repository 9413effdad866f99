// Heartbeat: the beat, the gauges and the status line.
#include "dispatcher/heartbeat.hpp"

#include "ops/metrics.hpp"
#include "ops/sd_notify.hpp"

#include <boost/json.hpp>

#include <algorithm>

namespace klingq::dispatcher {
namespace asio = boost::asio;

Heartbeat::Heartbeat(Context& context) : ctx_(context), wakeup_(context.executor, context.stop) {}

asio::awaitable<void> Heartbeat::run() {
  co_await run_loop(wakeup_, [this] { return !ctx_.stop.requested(); }, [this] { return run_once(); });
}

asio::awaitable<SteadyDuration> Heartbeat::run_once() {
  try {
    auto settings = ctx_.options.queue;
    // bad_signatures: webhooks refused for their signature since this instance started
    // (the console sums them over the live instances; they are in no table).
    boost::json::object status_json{
        {"hold", to_string(ctx_.health.hold)},
        {"in_flight_requests", ctx_.in_flight},
        {"bad_signatures", static_cast<std::int64_t>(ctx_.metrics.webhooks(ops::WebhookResult::rejected_signature).Value())}};
    auto text = boost::json::serialize(status_json);
    const auto refusals = ctx_.health.refusals;
    snapshot_ = co_await ctx_.pool.run([settings, text](pqxx::connection& c) { return dispatcher::heartbeat(c, settings, text); });
    ctx_.health.note_database(true, "heartbeat");
    // A 401 that came while the snapshot was read stays: its halt may be newer than it.
    if (ctx_.health.refusals != refusals) snapshot_.halted = true;
    ctx_.health.halted = snapshot_.halted;
    if (!registered_) {
      registered_ = true;
      ctx_.downloads_wanted.notify();
    }
    publish_metrics();
  } catch (const std::exception& e) {
    ctx_.health.note_database(false, "heartbeat", &e);
  }
  ops::sd::status(status_line());
  ops::sd::watchdog();
  auto period = ctx_.options.heartbeat;
  if (auto watchdog = ops::sd::watchdog_interval()) {
    period = std::min<Duration>(period, std::chrono::duration_cast<Duration>(*watchdog / 3));
  }
  co_return period;
}

void Heartbeat::publish_metrics() {
  auto& metrics = ctx_.metrics;
  metrics.update_process();
  ops::Metrics::set_flag(metrics.metrics_publisher(), snapshot_.publisher);
  // The database-wide gauges come from one elected instance; the others export zeros,
  // so that sum() over instances counts every job once (ops/metrics.hpp).
  const Snapshot s = snapshot_.publisher ? snapshot_ : Snapshot{};
  for (int i = 0; i < static_cast<int>(ops::job_state_count); ++i) metrics.jobs(static_cast<ops::JobState>(i)).Set(0);
  for (const auto& [name, count] : s.jobs_by_state) {
    for (std::size_t i = 0; i < ops::job_state_count; ++i) {
      const auto state = static_cast<ops::JobState>(i);
      if (name == ops::to_string(state)) metrics.jobs(state).Set(static_cast<double>(count));
    }
  }
  metrics.in_flight_jobs().Set(static_cast<double>(s.in_flight));
  metrics.parallel_limit().Set(static_cast<double>(s.limits.parallel_limit));
  metrics.daily_used().Set(static_cast<double>(s.limits.day_used));
  metrics.daily_limit().Set(static_cast<double>(s.limits.day_limit));
  metrics.limit(ops::Window::rpm).Set(static_cast<double>(s.limits.rpm_limit));
  metrics.limit(ops::Window::daily).Set(static_cast<double>(s.limits.day_limit));
  metrics.limit(ops::Window::parallel).Set(static_cast<double>(s.limits.parallel_limit));
  metrics.remaining(ops::Window::rpm).Set(static_cast<double>(s.limits.rpm_remaining.value_or(s.limits.rpm_limit)));
  metrics.remaining(ops::Window::daily).Set(static_cast<double>(std::max<std::int64_t>(0, s.limits.day_limit - s.limits.day_used)));
  metrics.remaining(ops::Window::parallel).Set(static_cast<double>(std::max<std::int64_t>(0, s.limits.parallel_limit - s.in_flight)));
  metrics.reset_timestamp(ops::Window::rpm).Set(s.limits.rpm_reset_at ? to_epoch_seconds(*s.limits.rpm_reset_at) : 0);
  metrics.reset_timestamp(ops::Window::daily).Set(s.limits.day_reset_at ? to_epoch_seconds(*s.limits.day_reset_at) : 0);
  if (s.balance || !snapshot_.publisher) metrics.credit_balance().Set(static_cast<double>(s.balance.value_or(0)));
  metrics.instances().Set(static_cast<double>(s.instances));
  ops::Metrics::set_flag(metrics.halted(), s.halted);
  ops::Metrics::set_flag(metrics.paused(), s.paused);
  metrics.stuck_jobs().Set(static_cast<double>(s.stuck));
}

std::string Heartbeat::status_line() const {
  const auto& s = snapshot_;
  std::int64_t queued = 0;
  for (const auto& [name, count] : s.jobs_by_state) if (name == "queued") queued = count;
  std::string line = "queued " + std::to_string(queued) + ", in flight " + std::to_string(s.in_flight) +
                     "/" + std::to_string(s.limits.parallel_limit) + ", today " +
                     std::to_string(s.limits.day_used) + "/" + std::to_string(s.limits.day_limit);
  if (s.balance) line += ", balance " + std::to_string(*s.balance);
  if (ctx_.health.hold != Hold::none) line += ", held by " + std::string(to_string(ctx_.health.hold));
  if (!ctx_.health.database_ok) line += ", DATABASE UNREACHABLE";
  return line;
}

}  // namespace klingq::dispatcher
