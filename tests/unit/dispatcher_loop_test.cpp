// The dispatcher's loop pieces without a database or a socket: the backoff and until
// arithmetic, the stop signal, the loop skeleton with its wake-ups, and the task group
// that shutdown joins. Asio timers run on a local io_context; every wait in here has a
// deadline (run_for), and no test sleeps in place of a condition.
#include "dispatcher/loop.hpp"
#include "dispatcher/task_group.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

namespace asio = boost::asio;
using namespace klingq;
using namespace klingq::dispatcher;
using namespace std::chrono_literals;

namespace {

// Runs a coroutine on io to its end, within a deadline; false when it did not end.
bool run_to_end(asio::io_context& io, asio::awaitable<void> coroutine, std::chrono::seconds deadline = 10s) {
  bool ended = false;
  asio::co_spawn(io, std::move(coroutine), [&](std::exception_ptr error) {
    ended = true;
    if (error) std::rethrow_exception(error);
  });
  io.run_for(deadline);
  return ended;
}

}  // namespace

TEST_CASE("backoff doubles from its base five times at most, then the cap holds") {
  CHECK(backoff(0, 100ms, 3s) == 100ms);
  CHECK(backoff(1, 100ms, 3s) == 200ms);
  CHECK(backoff(4, 100ms, 3s) == 1600ms);
  CHECK(backoff(5, 100ms, 3s) == 3s);  // 3.2 s capped
  CHECK(backoff(5, 200ms, 10s) == 6400ms);
  CHECK(backoff(6, 200ms, 10s) == 6400ms);   // the exponent stops at 5
  CHECK(backoff(40, 200ms, 10s) == 6400ms);  // no overflow however long the outage
  CHECK(backoff(-1, 100ms, 3s) == 100ms);
}

TEST_CASE("until: the distance to a wall-clock instant, plus 1 ms, within a cap") {
  const TimePoint now = from_epoch_ms(1'800'000'000'000);
  CHECK(until(TimePoint::max(), 5s, now) == 5s);            // no instant: the cap
  CHECK(until(now + std::chrono::hours(1), 5s, now) == 5s);  // further than the cap
  CHECK(until(now - 1s, 5s, now) == 1ms);                    // passed: at once, nearly
  CHECK(until(now, 5s, now) == 1ms);
  CHECK(until(now + 250ms, 5s, now) == 251ms);
}

TEST_CASE("a stop signal runs each subscriber once, in order, and none that unsubscribed") {
  StopSignal stop;
  std::vector<int> calls;
  auto first = stop.subscribe([&] { calls.push_back(1); });
  std::optional<StopSignal::Subscription> gone = stop.subscribe([&] { calls.push_back(2); });
  auto third = stop.subscribe([&] {
    calls.push_back(3);
    gone.reset();  // a subscriber may drop another one meanwhile
  });
  gone.reset();
  CHECK_FALSE(stop.requested());
  stop.request();
  stop.request();  // once only
  CHECK(stop.requested());
  CHECK(calls == std::vector<int>{1, 3});
  auto late = stop.subscribe([&] { calls.push_back(4); });  // already stopped: at once
  CHECK(calls == std::vector<int>{1, 3, 4});
}

TEST_CASE("the loop skeleton: zero means again at once, notify cuts a sleep short, stop ends it") {
  asio::io_context io;
  StopSignal stop;
  Wakeup wakeup(io.get_executor(), stop);
  int rounds = 0;
  auto round = [&]() -> asio::awaitable<SteadyDuration> {
    ++rounds;
    if (rounds < 3) co_return SteadyDuration::zero();  // more work: no sleep in between
    if (rounds == 3) {
      // Runs once the loop sleeps: the hour must not be waited out.
      asio::post(io, [&] { wakeup.notify(); });
      co_return std::chrono::hours(1);
    }
    if (rounds == 4) {
      asio::post(io, [&] { stop.request(); });  // stop cuts the sleep short too
      co_return std::chrono::hours(1);
    }
    FAIL("no round after stop");
    co_return SteadyDuration::zero();
  };
  REQUIRE(run_to_end(io, run_loop(wakeup, [&] { return !stop.requested(); }, round)));
  CHECK(rounds == 4);
}

TEST_CASE("the loop skeleton: a stop raised during a round ends the loop without its sleep") {
  asio::io_context io;
  StopSignal stop;
  Wakeup wakeup(io.get_executor(), stop);
  int rounds = 0;
  auto round = [&]() -> asio::awaitable<SteadyDuration> {
    ++rounds;
    stop.request();
    co_return std::chrono::hours(1);
  };
  REQUIRE(run_to_end(io, run_loop(wakeup, [&] { return !stop.requested(); }, round)));
  CHECK(rounds == 1);
}

TEST_CASE("a notify while the service is awake leaves the flag for it and does not cut the next sleep") {
  asio::io_context io;
  StopSignal stop;
  Wakeup wakeup(io.get_executor(), stop);
  int rounds = 0;
  bool pending_in_second_round = false;
  std::chrono::steady_clock::time_point slept_from;
  SteadyDuration slept{};
  auto round = [&]() -> asio::awaitable<SteadyDuration> {
    if (++rounds == 1) {
      wakeup.notify();  // nobody sleeps yet: only the flag is set
      slept_from = std::chrono::steady_clock::now();
      co_return 50ms;
    }
    slept = std::chrono::steady_clock::now() - slept_from;
    pending_in_second_round = wakeup.take();
    stop.request();
    co_return SteadyDuration::zero();
  };
  REQUIRE(run_to_end(io, run_loop(wakeup, [&] { return !stop.requested(); }, round)));
  CHECK(rounds == 2);
  CHECK(slept >= 50ms);  // a timer never fires early: the sleep ran its course
  CHECK(pending_in_second_round);
  CHECK_FALSE(wakeup.pending());
}

TEST_CASE("a task group joins every task, also one that threw, and gives up at its deadline") {
  asio::io_context io;
  StopSignal stop;
  TaskGroup tasks(io.get_executor());
  Wakeup blocker(io.get_executor(), stop);
  int finished = 0;
  auto quick = [&]() -> asio::awaitable<void> {
    co_await asio::post(io, asio::use_awaitable);
    ++finished;
  };
  auto throws = [&]() -> asio::awaitable<void> {
    co_await asio::post(io, asio::use_awaitable);
    throw std::runtime_error("one task failed");  // logged; ends only this task
  };
  auto blocked = [&]() -> asio::awaitable<void> {
    while (!stop.requested()) co_await blocker.sleep(std::chrono::hours(1));
    ++finished;
  };
  tasks.spawn(quick(), "quick");
  tasks.spawn(throws(), "throws");
  tasks.spawn(blocked(), "blocked");
  CHECK(tasks.running() == 3);
  bool joined_early = true;
  bool joined_after_stop = false;
  auto shutdown = [&]() -> asio::awaitable<void> {
    // The blocked task holds the group past this deadline...
    joined_early = co_await tasks.join(std::chrono::steady_clock::now() + 50ms);
    CHECK(tasks.running() == 1);
    // ...until stop releases it.
    stop.request();
    joined_after_stop = co_await tasks.join(std::chrono::steady_clock::now() + 10s);
  };
  REQUIRE(run_to_end(io, shutdown()));
  CHECK_FALSE(joined_early);
  CHECK(joined_after_stop);
  CHECK(finished == 2);
  CHECK(tasks.running() == 0);
}

TEST_CASE("a task the group gave up on keeps its owner alive until its frame is destroyed") {
  auto owner = std::make_shared<int>(42);
  std::weak_ptr<int> watched = owner;
  {
    asio::io_context io;
    {
      TaskGroup tasks(io.get_executor());
      tasks.keep_alive(owner);
      asio::steady_timer never(io, std::chrono::hours(1));
      tasks.spawn([](asio::steady_timer& timer) -> asio::awaitable<void> {
        co_await timer.async_wait(asio::use_awaitable);
      }(never), "abandoned");
      io.run_for(20ms);  // the task starts and waits
      CHECK(tasks.running() == 1);
    }  // the timer goes: its wait completes, but io does not run again to resume the task
    owner.reset();
    CHECK_FALSE(watched.expired());  // the suspended frame holds it
  }  // the io_context destroys the frame
  CHECK(watched.expired());
}
