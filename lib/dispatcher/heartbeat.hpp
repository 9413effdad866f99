// The heartbeat: this instance's row in klingq.instances (other instances take over the
// downloads of one whose heartbeat stopped), the gauges of /metrics from the snapshot
// the same transaction reads, the one-line summary for systemd's STATUS= and /readyz,
// and WATCHDOG=1 (at least three times per watchdog period).
#pragma once

#include "dispatcher/context.hpp"
#include "dispatcher/loop.hpp"
#include "dispatcher/transactions.hpp"

#include <boost/asio/awaitable.hpp>

#include <string>

namespace klingq::dispatcher {

class Heartbeat {
 public:
  explicit Heartbeat(Context& context);

  // The heartbeat loop, until stop.
  boost::asio::awaitable<void> run();
  // One beat: the instance row and the snapshot, metrics, STATUS= and WATCHDOG=.
  // Returns the period until the next.
  boost::asio::awaitable<SteadyDuration> run_once();

  // The instance row exists (the first beat succeeded): until then, other instances
  // would take this one's download claims for a dead instance's.
  bool registered() const { return registered_; }
  // "queued N, in flight N/N, today N/N[, balance N][, held by X][, DATABASE UNREACHABLE]"
  std::string status_line() const;

 private:
  void publish_metrics();

  Context& ctx_;
  Wakeup wakeup_;  // nothing but stop cuts this sleep short
  Snapshot snapshot_;
  bool registered_ = false;
};

}  // namespace klingq::dispatcher
