// limits.day_starts_at: a provider's day given as UTC or as local time with its offset.
#include "config/config.hpp"

#include <doctest/doctest.h>

using namespace klingq::config;

TEST_CASE("config: limits.day_starts_at reads UTC and local times with an offset") {
  CHECK(parse_day_start("16:00Z") == 16 * 60);
  CHECK(parse_day_start("00:00+08:00") == 16 * 60);  // a UTC+8 provider: the same instant
  CHECK(parse_day_start("00:00Z") == 0);
  CHECK(parse_day_start("23:30-01:00") == 30);
  CHECK(parse_day_start("05:30+05:30") == 0);
  CHECK(!parse_day_start("16:00"));
  CHECK(!parse_day_start("24:00Z"));
  CHECK(!parse_day_start("16:60Z"));
  CHECK(!parse_day_start("4pm"));
  CHECK(!parse_day_start("16:00+8"));
  CHECK(!parse_day_start("16:00+15:00"));

  auto config = parse("limits:\n  day_starts_at: \"00:00+08:00\"\n");
  config.validate();
  CHECK(config.limits.day_starts_at_minutes == 16 * 60);
  CHECK(!Config{}.limits.day_starts_at_minutes);
}

TEST_CASE("config: a bad limits.day_starts_at names the key") {
  std::string message;
  try {
    parse("limits:\n  day_starts_at: noon\n");
  } catch (const ConfigError& e) {
    message = e.what();
  }
  CHECK(message.find("'limits.day_starts_at'") != std::string::npos);
  CHECK(message.find("noon") != std::string::npos);
}
