// What the dispatcher's services share, and nothing more. Each service (claimer,
// recorder, poller, completion, credit refresher, listener, heartbeat, downloads) owns
// its own timers, counters and queues; what several of them must see lives here:
//
//   the executor, the database pool, the API client, the metrics and the options
//   the one stop signal and the task group that every coroutine is spawned in
//   Health: what /readyz and STATUS= show, updated by whoever last talked to PostgreSQL
//   in_flight: the requests of this instance that take a slot of max_in_flight
//   the wake-ups that cross services: "claim now", "a download may be due", "the
//     claimer waits for credit"
//   api_call(): one exchange with the API that the end of the shutdown grace can abandon
//
// Everything runs on `executor` (one thread); blocking database work goes through pool.
#pragma once

#include "api/protocol.hpp"
#include "db/pool.hpp"
#include "dispatcher/hold_log.hpp"
#include "dispatcher/loop.hpp"
#include "dispatcher/options.hpp"
#include "dispatcher/task_group.hpp"
#include "dispatcher/transactions.hpp"
#include "http/client.hpp"
#include "ratelimit/headers.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <exception>
#include <list>
#include <memory>
#include <optional>

namespace klingq::ops {
class Metrics;
}

namespace klingq::dispatcher {

// Kept in memory so that /readyz and STATUS= never wait for the database.
struct Health {
  bool database_ok = false;  // the last database round trip of any service succeeded
  bool halted = false;       // dispatch stopped by a 401 (seen by the claim or the heartbeat)
  // 401s seen by this instance: a heartbeat snapshot read while one arrived may predate
  // its halt in the database, so it must not clear the flag that 401 raised.
  std::uint64_t refusals = 0;
  Hold hold = Hold::none;    // why the last claim took fewer rows than it asked for
  bool day_reset_assumed = true;  // with hold daily: only assumed, the credit refresher looks again

  // Logs database_ok / database_unreachable when the state changes, not every time.
  void note_database(bool ok, const char* where, const std::exception* error = nullptr);
  // Logs dispatch_held / dispatch_flowing when what holds dispatch changes (HoldLog).
  void note_hold(Hold hold);
  HoldLog hold_log;
};

struct Context {
  Context(boost::asio::any_io_executor executor, db::Pool& pool, http::Client& api, ops::Metrics& metrics,
          EngineOptions options);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  boost::asio::any_io_executor executor;  // the network thread: every service runs here
  db::Pool& pool;                         // every blocking libpqxx call
  http::Client& api;                      // the generation API (through api_call)
  ops::Metrics& metrics;
  // Replaced whole by Engine::reload(). A service copies what it needs before a
  // co_await instead of holding a reference across it.
  EngineOptions options;

  StopSignal stop;  // Engine::stop(); before the wake-ups, which subscribe to it
  TaskGroup tasks;  // every loop and every per-job coroutine; joined at shutdown
  Health health;
  // Submits from their claim until recorded, polls until applied, the balance query
  // while on the wire: what max_in_flight bounds and STATUS= shows.
  int in_flight = 0;
  // How long generation takes (klingq.generation_times), refreshed by the poller; shared
  // with the pool threads that schedule polls, so replaced whole, never changed.
  std::shared_ptr<const GenerationModel> generation = std::make_shared<const GenerationModel>();

  Wakeup claim_wanted;      // the claimer sleeps here: a row became runnable, a slot or token freed
  Wakeup downloads_wanted;  // the downloads loop sleeps here: a video may be due, a slot freed
  Wakeup credits_wanted;    // the credit refresher sleeps here: the claimer waits for credit

  // The API endpoint as the options say now (protocol, key, this instance's webhook).
  api::Endpoint endpoint() const;
  // A 401 from any request (submit, poll, balance query): logged at error, and
  // klingq_halted and /readyz say so at once, not at the next heartbeat or claim.
  // The halt itself is recorded in klingq.account by the response's transaction.
  // A proxy's 407 is classed alike (it halts too) and logged as proxy_auth_required.
  void api_key_refused(const char* request, const api::Outcome& outcome);

  // One exchange with the API. nullopt when it was abandoned at the end of the shutdown
  // grace (abandon_api_calls): the caller records nothing, its lease is released and a
  // later submit with the same idempotency key finds what the API did.
  boost::asio::awaitable<std::optional<http::ClientResult>> api_call(http::ClientRequest request);
  // Cuts every exchange still on the wire short and refuses new ones (shutdown, after
  // the grace).
  void abandon_api_calls();

 private:
  bool abandoned_ = false;
  // One per exchange on the wire, so that abandon_api_calls() can cancel it.
  std::list<std::shared_ptr<boost::asio::cancellation_signal>> calls_;
};

// What a response's rate-limit headers say (nothing when no response arrived).
ratelimit::Observation observation_of(const http::ClientResult& result);

}  // namespace klingq::dispatcher
