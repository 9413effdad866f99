// klingq-sim's provider day at another hour than 00:00 UTC (a UTC+8 provider begins its
// day at 16:00 UTC), with and without X-RateLimit-Reset-Day, and its command line.
#include "sim/api.hpp"
#include "sim/options.hpp"
#include "sim/state.hpp"

#include <doctest/doctest.h>

#include <chrono>

using namespace klingq::sim;
using namespace std::chrono_literals;

namespace {

TimePoint at(const char* iso) { return *parse_iso8601(iso); }

GenerateParams params() {
  GenerateParams p;
  p.prompt = "a cat";
  p.duration = 5;
  p.quality = "standard";
  return p;
}

Settings daily_bound(std::int64_t day_start_seconds) {
  Settings s;
  s.daily = 2;
  s.parallel = 0;
  s.gen_min_seconds = s.gen_max_seconds = 1;
  s.day_start_seconds = day_start_seconds;
  return s;
}

constexpr const char* submit_body =
    R"({"query": "mutation Generate($input: GenerateInput!) { generate(input: $input) { id status } }",
    "variables": {"input": {"type": "VIDEO", "provider": "kling", "input": {"text": "a cat"},
      "options": {"duration": 5, "aspectRatio": "16:9"}}}})";

ApiReply submit(Api& api, TimePoint real) {
  ApiRequest r;
  r.method = "POST";
  r.target = "/graphql";
  r.body = submit_body;
  r.authorization = "Bearer key-1";
  return api.handle(r, real);
}

}  // namespace

TEST_CASE("sim: the provider's day begins at the configured hour, not at 00:00 UTC") {
  Account account(daily_bound(16 * 3600), at("2026-03-01T15:59:00Z"));
  CHECK(std::holds_alternative<Submitted>(account.submit(at("2026-03-01T15:59:01Z"), nullptr, params())));
  CHECK(std::holds_alternative<Submitted>(account.submit(at("2026-03-01T15:59:02Z"), nullptr, params())));
  auto refused = account.submit(at("2026-03-01T15:59:03Z"), nullptr, params());
  REQUIRE(std::holds_alternative<ApiError>(refused));
  CHECK(std::get<ApiError>(refused).window == Window::daily);
  CHECK(std::get<ApiError>(refused).retry_at == at("2026-03-01T16:00:00Z"));
  CHECK(account.usage(at("2026-03-01T15:59:30Z")).day_reset == at("2026-03-01T16:00:00Z"));
  // 00:00 UTC is nothing special to this provider...
  CHECK(std::holds_alternative<Submitted>(account.submit(at("2026-03-01T16:00:00Z"), nullptr, params())));
  CHECK(account.usage(at("2026-03-02T00:00:05Z")).day_used == 1);
  CHECK(account.usage(at("2026-03-02T00:00:05Z")).day_reset == at("2026-03-02T16:00:00Z"));
  // ...16:00 UTC is.
  CHECK(account.usage(at("2026-03-02T16:00:00Z")).day_used == 0);
}

TEST_CASE("sim: Reset-Day is sent or left out as configured, Remaining-Day always") {
  const auto real0 = at("2026-05-05T12:00:00Z");
  const auto sim0 = at("2026-05-05T15:59:00Z");
  for (bool header : {true, false}) {
    CAPTURE(header);
    auto s = daily_bound(16 * 3600);
    s.reset_day_header = header;
    Api api(s, Secret("key-1"), Secret("whsec"), 1.0, real0, sim0);
    auto reply = submit(api, real0);
    REQUIRE(reply.status == 200);
    CHECK(reply.header("X-RateLimit-Remaining-Day") == "1");
    CHECK(reply.header("X-RateLimit-Limit-Day") == "2");
    if (header) {
      CHECK(reply.header("X-RateLimit-Reset-Day") == std::to_string(epoch_ms(real0 + 60s)));
    } else {
      CHECK(reply.header("X-RateLimit-Reset-Day").empty());
    }
    // After the provider's day begins, its count shows the whole day again.
    CHECK(submit(api, real0 + 61s).header("X-RateLimit-Remaining-Day") == "1");
  }
}

TEST_CASE("sim: --day-starts-at and --reset-day-header on the command line") {
  auto o = parse_options({"--api-key", "k", "--day-starts-at", "16:30", "--reset-day-header", "no"}, nullptr);
  CHECK(o.settings.day_start_seconds == 16 * 3600 + 30 * 60);
  CHECK_FALSE(o.settings.reset_day_header);
  auto d = parse_options({"--api-key", "k"}, nullptr);
  CHECK(d.settings.day_start_seconds == 0);
  CHECK(d.settings.reset_day_header);
  CHECK_THROWS_AS(parse_options({"--api-key", "k", "--day-starts-at", "25:00"}, nullptr), UsageError);
  CHECK_THROWS_AS(parse_options({"--api-key", "k", "--day-starts-at", "4pm"}, nullptr), UsageError);
  CHECK_THROWS_AS(parse_options({"--api-key", "k", "--reset-day-header", "maybe"}, nullptr), UsageError);
  Settings bad;
  bad.day_start_seconds = 86400;
  CHECK_THROWS_AS(bad.validate(), std::invalid_argument);
}
