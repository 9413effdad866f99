// Timestamp formatting and parsing for the simulator: see clock.hpp.
#include "sim/clock.hpp"

#include <charconv>
#include <ctime>

namespace klingq::sim {

std::string format_iso8601(TimePoint t) {
  auto seconds = std::chrono::floor<std::chrono::seconds>(t).time_since_epoch().count();
  std::time_t tt = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

std::optional<TimePoint> parse_iso8601(std::string_view text) {
  // Fixed positions: YYYY-MM-DDTHH:MM:SS
  if (text.size() < 20) return std::nullopt;
  auto number = [&](std::size_t at, std::size_t length, int& out) {
    auto r = std::from_chars(text.data() + at, text.data() + at + length, out);
    return r.ec == std::errc() && r.ptr == text.data() + at + length;
  };
  std::tm tm{};
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!number(0, 4, year) || text[4] != '-' || !number(5, 2, month) || text[7] != '-' ||
      !number(8, 2, day) || (text[10] != 'T' && text[10] != ' ') || !number(11, 2, hour) ||
      text[13] != ':' || !number(14, 2, minute) || text[16] != ':' || !number(17, 2, second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  std::chrono::nanoseconds fraction{0};
  if (text[pos] == '.') {
    ++pos;
    long long scale = 100000000, value = 0;
    std::size_t digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (digits++ < 9) {
        value += (text[pos] - '0') * scale;
        scale /= 10;
      }
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    fraction = std::chrono::nanoseconds(value);
  }
  auto zone = text.substr(pos);
  if (zone != "Z" && zone != "+00:00" && zone != "z") return std::nullopt;
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  auto seconds_since_epoch = timegm(&tm);
  return TimePoint(std::chrono::duration_cast<Duration>(std::chrono::seconds(seconds_since_epoch) + fraction));
}

}  // namespace klingq::sim
