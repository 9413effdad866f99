// The pieces every service loop of the dispatcher is made of, written once:
//
//   StopSignal  the engine's one cancellation signal: a flag, plus what each service
//               subscribed to cut short when it is raised (its sleep, the LISTEN socket,
//               the running downloads)
//   Wakeup      what a service sleeps on: a timer that another service cuts short with
//               notify() ("there may be work for you") and that stop cuts short too, plus
//               the flag of a notify() that arrived while the service was awake
//   run_loop    the one skeleton: a round (the service's run_once), then a sleep for as
//               long as the round asked, until the service is no longer running
//   backoff     the delay after n failures in a row
//   until       the sleep until a wall-clock instant (a limiter's retry time)
//   sleep_for   a sleep nothing cuts short (a backoff must not be skipped by a wake-up)
//
// All of it runs on the engine's one executor: no locks, and a notify() can never slip
// in between "is there work?" and the start of a sleep.
#pragma once

#include "util/clock.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>

namespace klingq::dispatcher {

using SteadyDuration = std::chrono::steady_clock::duration;

// base × 2^failures, the exponent capped at 5, the result capped at cap. failures may
// be 0 (base itself).
SteadyDuration backoff(int failures, SteadyDuration base, SteadyDuration cap);

// How long to sleep until the wall-clock instant `at`: cap when it is further away (or
// never, TimePoint::max()), 1 ms when it has passed, else the distance plus 1 ms so that
// the instant has surely passed when the sleeper wakes.
SteadyDuration until(TimePoint at, SteadyDuration cap, TimePoint now = Clock::now());

// Sleeps d on a timer of its own, on the calling coroutine's executor. Neither a
// wake-up nor stop cuts it short: every caller bounds d (a backoff of a few seconds).
boost::asio::awaitable<void> sleep_for(SteadyDuration d);

// One flag for the whole engine: "stop". Raising it runs every subscriber once, in the
// order they subscribed; a subscriber only cancels what its service waits on, and the
// service then sees requested() and winds down in its own way.
class StopSignal {
 public:
  // Unsubscribes on destruction; keep it as long as what the callback touches lives.
  class Subscription {
   public:
    Subscription() = default;
    Subscription(Subscription&& other) noexcept;
    Subscription& operator=(Subscription&& other) noexcept;
    ~Subscription();

   private:
    friend class StopSignal;
    Subscription(StopSignal* signal, std::uint64_t id) : signal_(signal), id_(id) {}
    StopSignal* signal_ = nullptr;
    std::uint64_t id_ = 0;
  };

  StopSignal() = default;
  StopSignal(const StopSignal&) = delete;
  StopSignal& operator=(const StopSignal&) = delete;

  bool requested() const { return requested_; }
  // Raises the flag; later calls do nothing.
  void request();
  // on_stop runs when the flag is raised (at once if it already is).
  [[nodiscard]] Subscription subscribe(std::function<void()> on_stop);

 private:
  bool requested_ = false;
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, std::function<void()>> subscribers_;  // by id: subscription order
};

// What one service sleeps on. One sleeper at a time (a timer's expires_after() cancels
// every wait on it, so two sleepers would wake each other forever).
class Wakeup {
 public:
  Wakeup(boost::asio::any_io_executor executor, StopSignal& stop);
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;

  // There may be work: cuts the current sleep short and leaves the flag set for a
  // service that is awake right now.
  void notify() {
    pending_ = true;
    timer_.cancel();
  }
  bool pending() const { return pending_; }
  // Clears the flag and says whether it was set.
  bool take() {
    const bool was = pending_;
    pending_ = false;
    return was;
  }
  // Until d has passed, notify() or stop. The flag is not looked at: the service
  // decides what a wake-up that came while it was awake means (see run_loop).
  boost::asio::awaitable<void> sleep(SteadyDuration d);

 private:
  boost::asio::steady_timer timer_;
  bool pending_ = false;
  StopSignal::Subscription on_stop_;
};

// The one skeleton of every service loop:
//
//   while running():  wait = round();  if wait > 0 and still running: sleep on wakeup
//
// round is the service's run_once(): it does one unit of work (a claim, a group commit,
// a heartbeat...), catches and reports its own failures, and returns how long to sleep;
// zero means "again at once" (maybe more work, or a wake-up arrived during the round).
// running() is usually "stop not requested"; the recorder keeps going while submits are
// still to be recorded. The sleep is cut short by wakeup.notify() and by stop.
template <typename Running, typename Round>
boost::asio::awaitable<void> run_loop(Wakeup& wakeup, Running running, Round round) {
  while (running()) {
    const SteadyDuration wait = co_await round();
    // Checked again: a stop raised during the round must not wait out the sleep.
    if (wait > SteadyDuration::zero() && running()) co_await wakeup.sleep(wait);
  }
}

}  // namespace klingq::dispatcher
