// Context: Health's logging, the abandonable API call, observation_of.
#include "dispatcher/context.hpp"

#include "ops/metrics.hpp"
#include "util/log.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace klingq::dispatcher {
namespace asio = boost::asio;

void Health::note_database(bool ok, const char* where, const std::exception* error) {
  if (ok && !database_ok) log::notice("database_ok", {{"where", where}});
  if (!ok && database_ok) {
    log::error("database_unreachable", {{"where", where}, {"error", error ? error->what() : "?"}});
  }
  database_ok = ok;
}

void Health::note_hold(Hold next) {
  // Once per change of what holds dispatch, not once per flicker (hold_log.hpp).
  switch (hold_log.on_claim(next, std::chrono::steady_clock::now())) {
    case HoldLog::Line::held: log::notice("dispatch_held", {{"by", to_string(next)}}); break;
    case HoldLog::Line::flowing: log::info("dispatch_flowing"); break;
    case HoldLog::Line::none: break;
  }
  hold = next;
}

Context::Context(asio::any_io_executor executor, db::Pool& pool, http::Client& api, ops::Metrics& metrics,
                 EngineOptions options)
    : executor(executor), pool(pool), api(api), metrics(metrics), options(std::move(options)), tasks(executor),
      claim_wanted(executor, stop), downloads_wanted(executor, stop), credits_wanted(executor, stop) {}

Context::~Context() = default;

void Context::api_key_refused(const char* request, const api::Outcome& outcome) {
  log::error(outcome.http_status == 407 ? "proxy_auth_required" : "api_key_refused",
             {{"request", request}, {"message", outcome.message}});
  health.halted = true;
  ++health.refusals;
  ops::Metrics::set_flag(metrics.halted(), true);
}

api::Endpoint Context::endpoint() const {
  return api::Endpoint{options.protocol, &options.api_key, options.queue.webhook_url};
}

asio::awaitable<std::optional<http::ClientResult>> Context::api_call(http::ClientRequest request) {
  if (abandoned_) co_return std::nullopt;
  // The exchange runs as a coroutine of its own so that a cancellation signal can be
  // bound to it alone: cancelling the caller instead would also reach a database call
  // it might be awaiting, and those run on the pool's threads.
  auto signal = std::make_shared<asio::cancellation_signal>();
  struct Registered {
    std::list<std::shared_ptr<asio::cancellation_signal>>& calls;
    std::list<std::shared_ptr<asio::cancellation_signal>>::iterator at;
    ~Registered() { calls.erase(at); }
  } registered{calls_, calls_.insert(calls_.end(), signal)};
  std::optional<http::ClientResult> result;
  try {
    result = co_await asio::co_spawn(executor, api.request(std::move(request)),
                                     asio::bind_cancellation_slot(signal->slot(), asio::use_awaitable));
  } catch (...) {
    // A cancelled coroutine may throw operation_aborted from its next wait.
    if (!abandoned_) throw;
  }
  if (abandoned_) co_return std::nullopt;
  co_return result;
}

void Context::abandon_api_calls() {
  abandoned_ = true;
  auto calls = calls_;  // a cancellation may complete (and unregister) an exchange at once
  for (auto& call : calls) call->emit(asio::cancellation_type::terminal);
}

ratelimit::Observation observation_of(const http::ClientResult& result) {
  if (result.error) return {};
  const auto& fields = result.response.headers;
  return ratelimit::parse_headers(
      [&](std::string_view name) -> std::optional<std::string> {
        auto it = fields.find(boost::beast::string_view(name.data(), name.size()));
        if (it == fields.end()) return std::nullopt;
        return std::string(it->value());
      },
      Clock::now());
}

}  // namespace klingq::dispatcher
