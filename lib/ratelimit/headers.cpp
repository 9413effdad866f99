#include "ratelimit/headers.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <ctime>

namespace klingq::ratelimit {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::optional<std::int64_t> parse_count(std::string_view value) {
  value = trim(value);
  std::int64_t out = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
  if (ec != std::errc() || end != value.data() + value.size() || out < 0) return std::nullopt;
  return out;
}

std::optional<double> parse_number(std::string_view value) {
  value = trim(value);
  if (value.empty() || value.size() > 32) return std::nullopt;
  std::string text(value);
  char* end = nullptr;
  double out = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(out) || out < 0) return std::nullopt;
  return out;
}

// TimePoint counts nanoseconds in 64 bits and ends in April 2262. Converting a value past
// that is undefined behaviour, so such a value (a garbled header: no real window resets
// centuries ahead) reads as unreadable.
constexpr double max_epoch_seconds = 9.0e9;  // 2255
constexpr double max_delta_seconds = 1.0e9;  // 31 years

std::optional<TimePoint> seconds_after(TimePoint now, double seconds) {
  if (!(seconds <= max_delta_seconds)) return std::nullopt;
  return now + std::chrono::duration_cast<Duration>(std::chrono::duration<double>(seconds));
}

std::optional<TimePoint> at_epoch_ms(double ms) {
  if (!(ms <= max_epoch_seconds * 1000.0)) return std::nullopt;
  return from_epoch_ms(static_cast<std::int64_t>(ms));
}

int month_index(std::string_view name) {
  static constexpr std::string_view months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; ++i) {
    if (name == months[i]) return i;
  }
  return -1;
}

WindowReport read_window(const HeaderLookup& header, const std::string& suffix, TimePoint now) {
  WindowReport report;
  if (auto v = header("X-RateLimit-Limit" + suffix)) report.limit = parse_count(*v);
  if (auto v = header("X-RateLimit-Remaining" + suffix)) report.remaining = parse_count(*v);
  if (auto v = header("X-RateLimit-Reset" + suffix)) report.reset_at = parse_reset(*v, now);
  return report;
}

// IETF draft fields: "RateLimit: limit=10, remaining=3, reset=20" (draft 03-06 style),
// separate RateLimit-Limit/-Remaining/-Reset, or structured "r=3;t=20" with
// RateLimit-Policy "q=10;w=60". Reset there is always delta seconds.
void read_ietf(const HeaderLookup& header, TimePoint now, WindowReport& report) {
  auto seconds_from_now = [&](std::string_view v) -> std::optional<TimePoint> {
    auto n = parse_number(v);
    if (!n) return std::nullopt;
    return seconds_after(now, *n);
  };
  if (auto v = header("RateLimit-Limit")) report.limit = parse_count(*v);
  if (auto v = header("RateLimit-Remaining")) report.remaining = parse_count(*v);
  if (auto v = header("RateLimit-Reset")) report.reset_at = seconds_from_now(*v);
  auto parameters = [](std::string_view text, auto&& on) {
    while (!text.empty()) {
      auto cut = text.find_first_of(",;");
      auto item = trim(text.substr(0, cut));
      auto eq = item.find('=');
      if (eq != std::string_view::npos) on(trim(item.substr(0, eq)), trim(item.substr(eq + 1)));
      if (cut == std::string_view::npos) break;
      text.remove_prefix(cut + 1);
    }
  };
  if (auto v = header("RateLimit")) {
    parameters(*v, [&](std::string_view key, std::string_view value) {
      if (key == "limit") report.limit = parse_count(value);
      else if (key == "remaining" || key == "r") report.remaining = parse_count(value);
      else if (key == "reset" || key == "t") report.reset_at = seconds_from_now(value);
    });
  }
  if (auto v = header("RateLimit-Policy")) {
    parameters(*v, [&](std::string_view key, std::string_view value) {
      if (key == "q" && !report.limit) report.limit = parse_count(value);
    });
  }
}

}  // namespace

const char* to_string(Window window) {
  switch (window) {
    case Window::rpm: return "rpm";
    case Window::daily: return "daily";
    case Window::parallel: return "parallel";
  }
  return "rpm";
}

std::optional<TimePoint> parse_http_date(std::string_view value) {
  value = trim(value);
  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"; RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT".
  auto comma = value.find(", ");
  if (comma == std::string_view::npos) return std::nullopt;
  std::string rest(value.substr(comma + 2));
  std::replace(rest.begin(), rest.end(), '-', ' ');
  char month[4] = {};
  int day = 0, year = 0, hour = 0, minute = 0, second = 0;
  char zone[4] = {};
  if (std::sscanf(rest.c_str(), "%d %3s %d %d:%d:%d %3s", &day, month, &year, &hour, &minute,
                  &second, zone) != 7) {
    return std::nullopt;
  }
  if (std::string_view(zone) != "GMT" && std::string_view(zone) != "UTC") return std::nullopt;
  int m = month_index(month);
  if (m < 0 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  if (year < 100) year += year < 70 ? 2000 : 1900;
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = m;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  std::time_t t = timegm(&tm);
  // Before 1970 or past 2255: no real reset time (timegm's -1 error is among them).
  if (t < 0 || static_cast<double>(t) > max_epoch_seconds) return std::nullopt;
  return Clock::from_time_t(t);
}

std::optional<TimePoint> parse_reset(std::string_view value, TimePoint now) {
  if (auto n = parse_number(value)) {
    if (*n > 1e12) return at_epoch_ms(*n);
    if (*n > 1e9) return at_epoch_ms(*n * 1000.0);
    return seconds_after(now, *n);
  }
  return parse_http_date(value);
}

std::optional<TimePoint> parse_retry_after(std::string_view value, TimePoint now) {
  if (auto n = parse_number(value)) return seconds_after(now, *n);
  return parse_http_date(value);
}

Observation parse_headers(const HeaderLookup& header, TimePoint now) {
  Observation observation;
  observation.rpm = read_window(header, "", now);
  if (!observation.rpm.any()) read_ietf(header, now, observation.rpm);
  observation.daily = read_window(header, "-Day", now);
  observation.parallel = read_window(header, "-Parallel", now);
  if (auto v = header("Retry-After")) observation.retry_after = parse_retry_after(*v, now);
  return observation;
}

}  // namespace klingq::ratelimit
