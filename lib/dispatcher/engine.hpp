// The engine of klingqd: the services that move rows through their life, composed on
// one Asio executor (the network thread), with every blocking database call on
// db::Pool. One file per service, each with its loop and a run_once() a test can call:
//
//   claimer           wakes on NOTIFY, on a freed slot or token, or on a slow safety
//                     timer; claims what every limit and the credit gate allow
//                     (dispatcher::claim) and starts one submit per row
//   recorder          group commit: every outcome that arrived while the previous group
//                     was being written is recorded, with the responses' rate-limit
//                     headers, in one transaction (dispatcher::record_submits)
//   poller            status queries for jobs whose webhook is missing or late, within
//                     the poll share of the request budget
//   completion        webhooks and terminal polls applied; the webhook receiver's logic
//   credit_refresher  the balance query at start, periodically, and soon after a hold
//   listener          LISTEN klingq_jobs on a dedicated connection, rebuilt when it breaks
//   heartbeat         the instance row, metrics and systemd STATUS/WATCHDOG
//   downloads         with outputs.download on: claims completed jobs whose video is due
//                     (db/outputs) and fetches each into outputs.dir (lib/outputs), a few
//                     at a time, retrying with backoff; never through the API client
//
// What they share is dispatcher::Context (context.hpp); the loop skeleton, the backoff
// and the stop signal are in loop.hpp; every coroutine is a task of one TaskGroup.
//
// Shutdown (the engine owns it): stop() raises the one stop signal. Claiming ends at
// once and downloads are interrupted (their attempts are released, not counted, and
// resume on the next start). run() then waits for every task, within the shutdown
// grace: in-flight requests finish and are recorded. Requests still on the wire after
// the grace are abandoned (their leases are released, a later submit with the same
// idempotency key finds what the API did) and the tasks are waited for again. Then
// this instance's unsent leases are released and its instance row removed.
#pragma once

#include "dispatcher/options.hpp"
#include "http/server.hpp"
#include "ops/ops_http.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <memory>
#include <string>

namespace klingq::db {
class Pool;
}
namespace klingq::http {
class Client;
}
namespace klingq::ops {
class Metrics;
}

namespace klingq::dispatcher {

class Engine {
 public:
  Engine(boost::asio::any_io_executor executor, db::Pool& pool, http::Client& api,
         ops::Metrics& metrics, EngineOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Runs every service until stop(); returns once drained (see above).
  boost::asio::awaitable<void> run();
  // Graceful stop: no new claims; in-flight requests finish within the grace period.
  void stop();
  // A row became runnable or a slot or token was freed.
  void wake();
  // New limits, secrets, key, log level (SIGHUP). A changed key clears a 401 halt.
  void reload(EngineOptions options);

  // The webhook receiver (webhook.listen).
  http::Handler webhook_handler();
  // For /readyz.
  ops::ReadyState ready_state() const;
  // One line for systemd's STATUS=.
  std::string status_line() const;

 private:
  struct Services;
  std::shared_ptr<Services> services_;
};

}  // namespace klingq::dispatcher
