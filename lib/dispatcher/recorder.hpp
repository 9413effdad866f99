// The recorder: group commit of submit outcomes. The claimer hands each answered
// submit over (add); a writer records every outcome that arrived while the previous
// group was being written in one transaction (dispatcher::record_submits), so the
// shared account row is locked once per group instead of once per job. Two writers run
// at once: while one group commits, the next is already being written (the groups
// touch disjoint rows and, when the API charged what was expected, not the account row).
//
// A submit counts as in flight from expect() until its outcome is recorded, dropped
// (the database stayed away through shutdown) or forgotten (abandoned at the end of
// the grace). At shutdown the writers go on until nothing is outstanding.
#pragma once

#include "dispatcher/context.hpp"
#include "dispatcher/loop.hpp"
#include "dispatcher/transactions.hpp"

#include <boost/asio/awaitable.hpp>

#include <array>
#include <cstddef>
#include <vector>

namespace klingq::dispatcher {

class Recorder {
 public:
  static constexpr std::size_t writers = 2;

  explicit Recorder(Context& context);

  // A submit is about to be sent: counted in flight, and waited for at shutdown.
  void expect();
  // Its outcome, to be recorded with whatever else has arrived.
  void add(SubmitInput input);
  // An expected submit that will not report (abandoned at the end of the grace).
  void forget();

  // Outcomes waiting for a writer.
  std::size_t queued() const { return queue_.size(); }
  // Submits expected and not yet recorded, dropped or forgotten.
  std::size_t outstanding() const { return outstanding_; }

  // One writer's loop (index < writers), until stop and nothing outstanding.
  boost::asio::awaitable<void> run(std::size_t writer);
  // One group: up to 1000 queued outcomes (one at a time after a failed group, to
  // isolate a bad one) in one transaction. Returns how long to sleep: an hour when
  // nothing is queued (add() cuts it short), zero otherwise. A failed group goes back
  // to the front of the queue after a backoff.
  boost::asio::awaitable<SteadyDuration> run_once(std::size_t writer);

 private:
  struct Writer {
    explicit Writer(Context& context) : wakeup(context.executor, context.stop) {}
    Wakeup wakeup;
    int failures = 0;       // groups failed in a row
    std::size_t alone = 0;  // after a failed group: record this many one by one
  };

  void recorded(const SubmitInput& input, const SubmitRecord& record);
  void finished(std::size_t count);  // count submits leave flight
  void wake_writers();

  Context& ctx_;
  std::vector<SubmitInput> queue_;  // answered submits, oldest first
  std::size_t outstanding_ = 0;
  std::array<Writer, writers> writers_;
};

}  // namespace klingq::dispatcher
