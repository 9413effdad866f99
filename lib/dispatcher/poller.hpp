// The poller: status queries for submitted jobs whose webhook is missing or late
// (dispatcher::claim_polls picks them, within what the request budget allows polls, and
// schedules their next poll from the generation-time model), one query per job; a
// terminal answer is applied through Completions like a webhook. It also keeps the model
// fresh: klingq.generation_times is recomputed and read every 15 s (every 2 s while it
// has few samples), so every instance schedules by the same history.
#pragma once

#include "dispatcher/completion.hpp"
#include "dispatcher/context.hpp"
#include "dispatcher/loop.hpp"
#include "dispatcher/transactions.hpp"

#include <boost/asio/awaitable.hpp>

namespace klingq::dispatcher {

class Poller {
 public:
  Poller(Context& context, Completions& completions);

  // The poll loop, until stop.
  boost::asio::awaitable<void> run();
  // One claim of due polls; each poll runs as a task of the group. Returns how long to
  // sleep: until the budget allows the next poll, within the safety poll.
  boost::asio::awaitable<SteadyDuration> run_once();

 private:
  boost::asio::awaitable<void> poll(PollJob job);
  boost::asio::awaitable<void> refresh_model();

  Context& ctx_;
  Completions& completions_;
  Wakeup wakeup_;  // nothing but stop cuts this sleep short
  std::chrono::steady_clock::time_point model_due_{};  // when the generation-time model is refreshed next
};

}  // namespace klingq::dispatcher
