// The listener: LISTEN klingq_jobs on a dedicated connection (libpqxx 6.4 has no async
// LISTEN: the socket is waited on with Asio, then get_notifs() reads what arrived).
// Every NOTIFY wakes the claimer; the payload "slot" (some instance recorded a
// completion) also wakes the downloads. A connection that breaks is rebuilt with
// backoff, and the claimer is woken once after each (re)connect for whatever was
// inserted while nobody listened.
#pragma once

#include "dispatcher/context.hpp"
#include "dispatcher/loop.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <memory>

namespace klingq::dispatcher {

class Listener {
 public:
  explicit Listener(Context& context);
  ~Listener();

  // The listen loop, until stop.
  boost::asio::awaitable<void> run();
  // One connection's life: connect, LISTEN, relay notifications until the connection
  // breaks or stop. Returns the backoff before the next connection (zero after a
  // clean end).
  boost::asio::awaitable<SteadyDuration> run_once();

 private:
  Context& ctx_;
  int failures_ = 0;  // connections lost or refused in a row
  std::unique_ptr<boost::asio::posix::stream_descriptor> socket_;  // a dup of the connection's
  Wakeup wakeup_;                      // the backoff sleep: stop cuts it short
  StopSignal::Subscription on_stop_;   // cancels the wait on the socket
};

}  // namespace klingq::dispatcher
