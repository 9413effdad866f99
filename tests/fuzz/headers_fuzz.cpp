// Rate-limit headers come from the API (or whatever answers in its place): the whole
// input is read as one Reset / Retry-After / date value, and as a block of "Name: value"
// lines behind a case-insensitive lookup, like Beast's fields give parse_headers.
#include "fuzz_target.hpp"

#include "ratelimit/headers.hpp"

#include <algorithm>
#include <cctype>
#include <string>
#include <utility>
#include <vector>

namespace klingq::fuzz {
namespace {

bool same_name(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

void check_window(const ratelimit::WindowReport& report) {
  require(!report.limit || *report.limit >= 0, "a reported limit is never negative");
  require(!report.remaining || *report.remaining >= 0, "a reported remaining is never negative");
}

}  // namespace

int fuzz_headers(const std::uint8_t* data, std::size_t size) {
  const std::string_view input = as_text(data, size);
  const TimePoint now = from_epoch_ms(1'767'225'600'000);  // 2026-01-01T00:00:00Z

  (void)ratelimit::parse_reset(input, now);
  (void)ratelimit::parse_retry_after(input, now);
  (void)ratelimit::parse_http_date(input);

  std::vector<std::pair<std::string, std::string>> fields;
  std::string_view rest = input;
  while (!rest.empty()) {
    auto end = rest.find('\n');
    auto line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    fields.emplace_back(std::string(line.substr(0, colon)), std::string(line.substr(colon + 1)));
  }
  ratelimit::HeaderLookup lookup = [&](std::string_view name) -> std::optional<std::string> {
    for (const auto& [field, value] : fields) {
      if (same_name(field, name)) return value;
    }
    return std::nullopt;
  };
  auto observation = ratelimit::parse_headers(lookup, now);
  check_window(observation.rpm);
  check_window(observation.daily);
  check_window(observation.parallel);
  return 0;
}

}  // namespace klingq::fuzz

KLINGQ_FUZZ_ENTRY(fuzz_headers)
