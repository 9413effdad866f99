// The engine of klingqd: the loops that move rows through their life, on one Asio
// executor (the network thread), with every blocking database call on db::Pool.
//
//   claim loop    wakes on NOTIFY, on a freed slot or token, or on a slow safety timer;
//                 claims what every limit and the credit gate allow (dispatcher::claim) and
//                 starts one submit per row
//   submit        one HTTP exchange per row; the outcome is classified once
//   record loop   group commit: every outcome that arrived while the previous group was
//                 being written is recorded, with the responses' rate-limit headers, in
//                 one transaction (dispatcher::record_submits)
//   poll loop     status queries for jobs whose webhook is missing or late, within the
//                 poll share of the request budget
//   credit loop   the balance query at start, periodically, and soon after a credit hold
//   listener      LISTEN klingq_jobs on a dedicated connection, rebuilt when it breaks
//   heartbeat     the instance row, metrics and systemd STATUS/WATCHDOG
//   downloads     with outputs.download on: claims completed jobs whose video is due
//                 (db/outputs) and fetches each into outputs.dir (lib/outputs), a few at
//                 a time, retrying with backoff; never through the API client or limits
//
// stop() ends claiming at once and interrupts downloads (their attempts are released,
// not counted, and resume on the next start); run() returns when in-flight requests have
// finished (bounded by the shutdown grace) and this instance's unsent leases are released.
#pragma once

#include "api/protocol.hpp"
#include "config/config.hpp"
#include "db/pool.hpp"
#include "dispatcher/options.hpp"
#include "dispatcher/transactions.hpp"
#include "http/client.hpp"
#include "http/server.hpp"
#include "ops/metrics.hpp"
#include "ops/ops_http.hpp"

#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <memory>
#include <random>
#include <string>

namespace klingq::dispatcher {

class Engine {
 public:
  Engine(boost::asio::any_io_executor executor, db::Pool& pool, http::Client& api,
         ops::Metrics& metrics, EngineOptions options);
  ~Engine();

  // Runs every loop until stop(); returns once drained.
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
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace klingq::dispatcher
