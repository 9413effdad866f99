// The engine: builds the services, spawns their loops into the task group, and owns
// shutdown (engine.hpp). It holds no policy and no SQL of its own.
#include "dispatcher/engine.hpp"

#include "db/outputs.hpp"
#include "db/pool.hpp"
#include "dispatcher/claimer.hpp"
#include "dispatcher/completion.hpp"
#include "dispatcher/context.hpp"
#include "dispatcher/credit_refresher.hpp"
#include "dispatcher/downloads.hpp"
#include "dispatcher/heartbeat.hpp"
#include "dispatcher/listener.hpp"
#include "dispatcher/loop.hpp"
#include "dispatcher/poller.hpp"
#include "dispatcher/recorder.hpp"
#include "util/log.hpp"

#include <boost/json.hpp>
#include <pqxx/pqxx>

namespace klingq::dispatcher {
namespace asio = boost::asio;
using asio::awaitable;
using namespace std::chrono_literals;

namespace {

// After the grace, what is left once the requests on the wire are abandoned: groups
// and downloads being recorded (their retries give up after a few attempts once
// stopping), polls being applied. A database call that hangs longer than this is not
// waited for: run() returns and the process exits; the leases expire.
constexpr SteadyDuration abandon_grace = 5s;

}  // namespace

struct Engine::Services {
  Services(asio::any_io_executor executor, db::Pool& pool, http::Client& api, ops::Metrics& metrics,
           EngineOptions options)
      : context(executor, pool, api, metrics, std::move(options)),
        recorder(context),
        completions(context),
        claimer(context, recorder),
        poller(context, completions),
        credits(context),
        listener(context),
        heartbeat(context),
        downloads(context, heartbeat),
        stopped(executor, context.stop) {}

  Context context;  // first: every service below refers to it
  Recorder recorder;
  Completions completions;
  Claimer claimer;
  Poller poller;
  CreditRefresher credits;
  Listener listener;
  Heartbeat heartbeat;
  Downloads downloads;
  Wakeup stopped;  // run() sleeps here until stop()

  // SIGHUP with a new API key: the 401 halt may end.
  awaitable<void> clear_halt(QueueSettings settings) {
    co_await context.pool.run([settings](pqxx::connection& c) { dispatcher::clear_halt(c, settings); });
    log::notice("halt_cleared", {{"why", "API key changed"}});
    context.claim_wanted.notify();
  }

  // SIGHUP: a changed plan applies while the limits still come from the plan.
  awaitable<void> ensure_account(QueueSettings settings) {
    co_await context.pool.run([settings](pqxx::connection& c) { dispatcher::ensure_account(c, settings); });
    context.claim_wanted.notify();
  }
};

namespace {

// The webhook receiver's HTTP side: Beast's request in, Beast's response out; the
// decision is Completions::on_webhook. `owner` keeps the services alive meanwhile.
awaitable<http::Response> answer_webhook(std::shared_ptr<void> owner, Completions& completions,
                                         http::Request request) {
  WebhookDelivery delivery{std::string(request.method_string()), std::string(request.target()),
                           std::string(request["X-Doitong-Signature"]), std::move(request.body())};
  auto answer = co_await completions.on_webhook(std::move(delivery));
  co_return http::make_response(answer.status, boost::json::serialize(boost::json::object{{"message", answer.message}}));
}

}  // namespace

Engine::Engine(asio::any_io_executor executor, db::Pool& pool, http::Client& api, ops::Metrics& metrics,
               EngineOptions options)
    : services_(std::make_shared<Services>(executor, pool, api, metrics, std::move(options))) {
  services_->context.tasks.keep_alive(services_);
}

Engine::~Engine() = default;

awaitable<void> Engine::run() {
  auto services = services_;
  auto& s = *services;
  auto& ctx = s.context;
  {
    auto settings = ctx.options.queue;
    co_await ctx.pool.run([settings](pqxx::connection& c) { dispatcher::ensure_account(c, settings); });
    // A proxy's 407 halted dispatch before: the proxy settings are read only at start,
    // so a start is when they may have been fixed (if not, the next 407 halts again).
    if (co_await ctx.pool.run([settings](pqxx::connection& c) { return dispatcher::clear_proxy_halt(c, settings); })) {
      log::notice("halt_cleared", {{"why", "klingqd started: the proxy settings are read again"}});
    }
    ctx.health.database_ok = true;
  }
  ctx.tasks.spawn(s.listener.run(), "listener");
  ctx.tasks.spawn(s.claimer.run(), "claimer");
  for (std::size_t i = 0; i < Recorder::writers; ++i) ctx.tasks.spawn(s.recorder.run(i), "recorder");
  ctx.tasks.spawn(s.poller.run(), "poller");
  ctx.tasks.spawn(s.credits.run(), "credit_refresher");
  ctx.tasks.spawn(s.heartbeat.run(), "heartbeat");
  ctx.tasks.spawn(s.downloads.run(), "downloads");

  // Until stop(). The sleep is renewed daily so that even this wait has a deadline.
  while (!ctx.stop.requested()) co_await s.stopped.sleep(24h);

  // The loops end, in-flight requests finish and are recorded, within the grace.
  if (!co_await ctx.tasks.join(std::chrono::steady_clock::now() + ctx.options.shutdown_grace)) {
    if (ctx.in_flight > 0) log::warning("shutdown_with_requests_in_flight", {{"count", std::to_string(ctx.in_flight)}});
    ctx.abandon_api_calls();
    if (!co_await ctx.tasks.join(std::chrono::steady_clock::now() + abandon_grace)) {
      log::error("shutdown_with_tasks_running", {{"count", std::to_string(ctx.tasks.running())}});
    }
  }
  try {
    auto settings = ctx.options.queue;
    auto download_settings = s.downloads.settings();
    auto released = co_await ctx.pool.run([settings, download_settings](pqxx::connection& c) {
      auto n = dispatcher::release_leases(c, settings);
      // Downloads that did not report within the grace: due again, uncounted.
      db::release_downloads(c, download_settings, true);
      dispatcher::remove_instance(c, settings);
      return n;
    });
    log::notice("stopped", {{"released_leases", std::to_string(released)}});
  } catch (const std::exception& e) {
    log::warning("shutdown_release_failed", {{"error", e.what()}});
  }
}

void Engine::stop() { services_->context.stop.request(); }

void Engine::wake() { services_->context.claim_wanted.notify(); }

void Engine::reload(EngineOptions options) {
  auto& ctx = services_->context;
  const bool key_changed = !(options.api_key == ctx.options.api_key);
  ctx.options = std::move(options);
  const auto settings = ctx.options.queue;
  if (key_changed) ctx.tasks.spawn(services_->clear_halt(settings), "reload");
  ctx.tasks.spawn(services_->ensure_account(settings), "reload");
}

http::Handler Engine::webhook_handler() {
  return [services = services_](http::Request request) {
    return answer_webhook(services, services->completions, std::move(request));
  };
}

ops::ReadyState Engine::ready_state() const {
  ops::ReadyState ready;
  ready.database_reachable = services_->context.health.database_ok;
  ready.halted = services_->context.health.halted;
  ready.detail = status_line();
  return ready;
}

std::string Engine::status_line() const { return services_->heartbeat.status_line(); }

}  // namespace klingq::dispatcher
