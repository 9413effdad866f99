// The claimer: the claim loop and the submits it starts. It wakes on NOTIFY (listener),
// on a freed slot or token (recorder, completion, credit refresher), or on the slow
// safety timer; claims what every limit and the credit gate allow right now
// (dispatcher::claim) and starts one submit per row: one HTTP exchange, its outcome
// classified once and handed to the recorder.
#pragma once

#include "dispatcher/context.hpp"
#include "dispatcher/loop.hpp"
#include "dispatcher/recorder.hpp"
#include "dispatcher/transactions.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <random>

namespace klingq::dispatcher {

class Claimer {
 public:
  Claimer(Context& context, Recorder& recorder);

  // The claim loop, until stop.
  boost::asio::awaitable<void> run();
  // One claim of at most min(free in-flight slots, claim_batch) rows; each claimed row's
  // submit runs as a task of the group. Returns how long to sleep: zero when the claim
  // was full (maybe more) or a wake-up came meanwhile, else until a limit frees a
  // token, within the safety poll.
  boost::asio::awaitable<SteadyDuration> run_once();

 private:
  boost::asio::awaitable<void> submit(ClaimedJob job);
  double unit_random() { return std::uniform_real_distribution<double>(0.0, 1.0)(random_); }

  Context& ctx_;
  Recorder& recorder_;
  std::chrono::steady_clock::time_point last_reap_{};  // when expired leases were last looked for
  std::mt19937_64 random_;                              // the jitter of a retry's backoff
};

}  // namespace klingq::dispatcher
