// The simulator's time scale: a simulated clock that runs `scale` times faster than the
// real one, anchored at a chosen instant. Everything the account model decides (windows,
// generation times, the daily reset) happens in simulated time; everything a client sees
// on the wire (Reset headers, Retry-After, real delays) is converted back to real time,
// so a client on the real clock that waits exactly as told waits exactly right.
// Pure: both directions take the instant to convert, nothing here reads a clock.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace klingq::sim {

// Simulated and real instants share the type: both are UTC wall-clock points.
using TimePoint = std::chrono::system_clock::time_point;
using Duration = std::chrono::system_clock::duration;

class TimeScale {
 public:
  // real_anchor is the real instant at which the simulated clock reads sim_anchor.
  TimeScale(TimePoint real_anchor, TimePoint sim_anchor, double scale)
      : real_anchor_(real_anchor), sim_anchor_(sim_anchor), scale_(scale > 0 ? scale : 1.0) {}

  double scale() const { return scale_; }
  TimePoint sim_anchor() const { return sim_anchor_; }

  TimePoint to_sim(TimePoint real) const {
    return sim_anchor_ + scaled(real - real_anchor_, scale_);
  }
  TimePoint to_real(TimePoint sim) const {
    return real_anchor_ + scaled(sim - sim_anchor_, 1.0 / scale_);
  }
  // A simulated span as the real span it takes.
  Duration real_span(Duration sim_span) const { return scaled(sim_span, 1.0 / scale_); }

 private:
  static Duration scaled(Duration span, double factor) {
    return Duration(static_cast<Duration::rep>(std::llround(static_cast<double>(span.count()) * factor)));
  }
  TimePoint real_anchor_;
  TimePoint sim_anchor_;
  double scale_;
};

// "2024-01-01T00:00:00Z" (whole seconds, UTC), the API's timestamp format.
std::string format_iso8601(TimePoint t);
// Parses "YYYY-MM-DDTHH:MM:SS[.fff](Z|+00:00)"; nullopt when malformed.
std::optional<TimePoint> parse_iso8601(std::string_view text);

inline std::int64_t epoch_ms(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace klingq::sim
