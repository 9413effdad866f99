// HoldLog: which changes of what holds dispatch deserve a log line. Pure (time is passed
// in), so the rule is tested without a daemon.
//
// Claims run every few seconds, and under a parallel or request limit the hold flickers
// between "held by parallel" and "flowing" with every completion: logging each flip
// gave 606 dispatch_held lines of 655 in a 40-job run. The rule instead: a hold is logged
// when it differs from the hold logged last and that kind of hold was not logged within
// `settle` (so parallel/rpm alternating says each once); "flowing" is logged only when
// dispatch had been held without a break for at least `settle` (a daily cap ending, a
// top-up), and then every kind of hold counts as new again.
#pragma once

#include "dispatcher/transactions.hpp"

#include <array>
#include <chrono>
#include <optional>

namespace klingq::dispatcher {

class HoldLog {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::seconds settle{30};

  enum class Line { none, held, flowing };
  // The claim's hold, at now: what to log (held: by `next`).
  Line on_claim(Hold next, Clock::time_point now);

 private:
  Hold logged_ = Hold::none;          // the hold the last held line named (none: flowing said)
  Clock::time_point held_since_{};    // start of the current unbroken hold
  Hold current_ = Hold::none;         // the hold of the last claim
  std::array<std::optional<Clock::time_point>, 8> last_line_{};  // per Hold: its last held line
};

}  // namespace klingq::dispatcher
