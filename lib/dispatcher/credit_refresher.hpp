// The credit refresher: the balance query at start, every credits.refresh_seconds, and
// soon after the claimer is held by credit (a top-up then ends the hold within about a
// second). The query spends a request token like any other call; the balance it
// returns becomes the known balance the claim's credit gate charges against. While a
// daily cap whose end is only assumed (no Reset-Day) holds dispatch, it runs at least
// once a minute: its answer's Remaining-Day shows when the provider's day began.
#pragma once

#include "dispatcher/context.hpp"
#include "dispatcher/loop.hpp"

#include <boost/asio/awaitable.hpp>

namespace klingq::dispatcher {

class CreditRefresher {
 public:
  explicit CreditRefresher(Context& context);

  // The refresh loop, until stop. It sleeps on context.credits_wanted.
  boost::asio::awaitable<void> run();
  // One refresh: a request token, then the balance query. Returns how long to sleep:
  // until the next token when none was free, else until the next refresh (sooner
  // while the claimer waits for credit, or after a failed query).
  boost::asio::awaitable<SteadyDuration> run_once();

 private:
  Context& ctx_;
  bool warned_low_balance_ = false;  // low_balance is logged once per dip below the mark
};

}  // namespace klingq::dispatcher
