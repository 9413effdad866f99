// The poller: status queries for submitted jobs whose webhook is missing or late
// (dispatcher::claim_polls picks them, within the poll share of the request budget, and
// pushes their next poll out), one query per job; a terminal answer is applied through
// Completions like a webhook.
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

  Context& ctx_;
  Completions& completions_;
  Wakeup wakeup_;  // nothing but stop cuts this sleep short
};

}  // namespace klingq::dispatcher
