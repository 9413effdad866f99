// CreditRefresher: the refresh round.
#include "dispatcher/credit_refresher.hpp"

#include "ops/metrics.hpp"
#include "util/log.hpp"

#include <algorithm>

namespace klingq::dispatcher {
namespace asio = boost::asio;
using namespace std::chrono_literals;

CreditRefresher::CreditRefresher(Context& context) : ctx_(context) {}

asio::awaitable<void> CreditRefresher::run() {
  co_await run_loop(ctx_.credits_wanted, [this] { return !ctx_.stop.requested(); }, [this] { return run_once(); });
}

asio::awaitable<SteadyDuration> CreditRefresher::run_once() {
  SteadyDuration wait = ctx_.options.credits_refresh;
  try {
    auto settings = ctx_.options.queue;
    auto token = co_await ctx_.pool.run([settings](pqxx::connection& c) { return dispatcher::take_request_token(c, settings); });
    if (token) {
      wait = until(*token, ctx_.options.credits_refresh);
    } else {
      ++ctx_.in_flight;
      auto answered = co_await ctx_.api_call(api::build_credits(ctx_.endpoint()));
      --ctx_.in_flight;
      if (!answered) co_return wait;  // abandoned at the end of the shutdown grace
      const auto& result = *answered;
      ctx_.metrics.api_request_duration(ops::ApiCall::credits).Observe(std::chrono::duration<double>(result.elapsed).count());
      auto balance = api::parse_balance(result);
      auto observation = observation_of(result);
      auto outcome = balance.outcome;
      co_await ctx_.pool.run([settings, outcome, observation](pqxx::connection& c) {
        dispatcher::record_response(c, settings, outcome, observation);
      });
      if (balance.balance) {
        auto value = *balance.balance;
        co_await ctx_.pool.run([settings, value](pqxx::connection& c) { dispatcher::set_balance(c, settings, value); });
        ctx_.metrics.credit_balance().Set(static_cast<double>(value));
        const bool low = value < ctx_.options.low_balance_warning;
        ops::Metrics::set_flag(ctx_.metrics.low_balance(), low);
        if (low && !warned_low_balance_) log::warning("low_balance", {{"balance", std::to_string(value)}});
        warned_low_balance_ = low;
        log::debug("balance", {{"balance", std::to_string(value)}});
        ctx_.claim_wanted.notify();
      } else {
        if (outcome.http_status == 407) {
          // Not a failing API but a proxy refusing us: dispatch halts, say why at error level.
          log::error("proxy_auth_required", {{"request", "balance"}, {"message", outcome.message}});
        } else {
          log::warning("balance_query_failed", {{"class", api::to_string(outcome.outcome)}, {"message", outcome.message}});
        }
        wait = std::min<SteadyDuration>(wait, 5s);
      }
      // While the claimer waits for credit, look again soon (a top-up).
      if (ctx_.credits_wanted.take()) {
        wait = std::min<SteadyDuration>(wait, std::max<SteadyDuration>(ctx_.options.safety_poll, 1s));
      }
      // While a daily cap whose end is only assumed holds dispatch, the API's day may
      // begin at another hour than ours: its Remaining-Day on this answer (a query that
      // costs no credits, paced like any other request) shows it. Look at least once a
      // minute, more often when credits.refresh_seconds asks.
      if (ctx_.health.hold == Hold::daily && ctx_.health.day_reset_assumed) {
        wait = std::min<SteadyDuration>(wait, std::min<SteadyDuration>(ctx_.options.credits_refresh, 60s));
      }
    }
    ctx_.health.note_database(true, "credits");
  } catch (const std::exception& e) {
    ctx_.health.note_database(false, "credits", &e);
    wait = 1s;
  }
  co_return wait;
}

}  // namespace klingq::dispatcher
