// Reading the API's rate-limit headers into observations. Pure: a header lookup and
// `now` in, what each window reported out. API.md: X-RateLimit-Limit/-Remaining/-Reset
// describe the request window; the -Day and -Parallel suffixes the other windows; the
// IETF RateLimit/RateLimit-Policy fields are understood when the X- ones are absent;
// Retry-After on a 429 wins. Reset is read as epoch seconds, epoch milliseconds, delta
// seconds or an HTTP date, because providers differ and the page does not say.
#pragma once

#include "util/clock.hpp"

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace klingq::ratelimit {

enum class Window { rpm, daily, parallel };
const char* to_string(Window window);

struct WindowReport {
  std::optional<std::int64_t> limit;
  std::optional<std::int64_t> remaining;
  std::optional<TimePoint> reset_at;
  bool any() const { return limit || remaining || reset_at; }
};

struct Observation {
  WindowReport rpm;
  WindowReport daily;
  WindowReport parallel;
  std::optional<TimePoint> retry_after;  // from Retry-After
};

// Returns the header's value or nullopt; names are matched case-insensitively by the
// caller's container (Beast's fields are).
using HeaderLookup = std::function<std::optional<std::string>(std::string_view name)>;

Observation parse_headers(const HeaderLookup& header, TimePoint now);

// A Reset value: epoch ms (> 1e12), epoch s (> 1e9), else seconds from now
// (fractions allowed), or an HTTP date. nullopt when unreadable.
std::optional<TimePoint> parse_reset(std::string_view value, TimePoint now);
// Retry-After: delta seconds or an HTTP date.
std::optional<TimePoint> parse_retry_after(std::string_view value, TimePoint now);
// IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") and RFC 850 dates.
std::optional<TimePoint> parse_http_date(std::string_view value);

}  // namespace klingq::ratelimit
