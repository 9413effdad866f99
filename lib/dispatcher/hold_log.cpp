// HoldLog's rule (hold_log.hpp).
#include "dispatcher/hold_log.hpp"

#include <utility>

namespace klingq::dispatcher {

HoldLog::Line HoldLog::on_claim(Hold next, Clock::time_point now) {
  const Hold previous = std::exchange(current_, next);
  if (next != Hold::none) {
    if (previous == Hold::none) held_since_ = now;
    if (next == logged_) return Line::none;
    auto& last = last_line_.at(static_cast<std::size_t>(next));
    if (last && now - *last < settle) return Line::none;  // said a moment ago
    last = now;
    logged_ = next;
    return Line::held;
  }
  // Flowing: worth a line only when it ends a hold that was logged and lasted.
  if (previous == Hold::none || logged_ == Hold::none || now - held_since_ < settle) return Line::none;
  logged_ = Hold::none;
  last_line_.fill(std::nullopt);
  return Line::flowing;
}

}  // namespace klingq::dispatcher
