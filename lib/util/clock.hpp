// Time as klingq sees it: wall-clock instants, because the API's Reset headers, the
// daily reset at 00:00 UTC and PostgreSQL timestamps are all wall-clock. Every decision
// function takes `now` as a parameter so tests drive it with a fake clock.
#pragma once

#include <chrono>
#include <cstdint>

namespace klingq {

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;

inline std::int64_t to_epoch_ms(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
inline TimePoint from_epoch_ms(std::int64_t ms) {
  return TimePoint(std::chrono::duration_cast<Duration>(std::chrono::milliseconds(ms)));
}
inline double to_epoch_seconds(TimePoint t) { return static_cast<double>(to_epoch_ms(t)) / 1000.0; }

// The next 00:00 UTC strictly after t.
inline TimePoint next_utc_midnight(TimePoint t) {
  auto day = std::chrono::floor<std::chrono::days>(t);
  return day + std::chrono::days(1);
}

}  // namespace klingq
