#include "ratelimit/headers.hpp"
#include "ratelimit/limiter.hpp"

#include <doctest/doctest.h>

#include <map>

using namespace klingq;
using namespace klingq::ratelimit;
using namespace std::chrono_literals;

namespace {
// 2026-11-25T12:00:00Z, a fixed "now".
const TimePoint t0 = from_epoch_ms(1795608000000);

HeaderLookup headers(std::map<std::string, std::string> values) {
  return [values](std::string_view name) -> std::optional<std::string> {
    auto it = values.find(std::string(name));
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

// Runs a limiter against an ideal fixed-window server for `span`, asking for submits
// whenever the limiter allows, and returns how many were sent in each server window.
struct FixedWindowServer {
  std::int64_t limit;
  Duration window;
  TimePoint start;
  std::map<std::int64_t, std::int64_t> sent_per_window;
  std::int64_t window_index(TimePoint t) const { return (t - start) / window; }
  TimePoint reset_of(TimePoint t) const { return start + window * (window_index(t) + 1); }
  Observation respond(TimePoint t) {
    auto& used = sent_per_window[window_index(t)];
    ++used;
    Observation o;
    o.rpm.limit = limit;
    o.rpm.remaining = std::max<std::int64_t>(0, limit - used);
    o.rpm.reset_at = reset_of(t);
    return o;
  }
};
}  // namespace

TEST_CASE("Reset is read as epoch seconds, epoch milliseconds, delta seconds or an HTTP date") {
  CHECK(parse_reset("1795608060", t0) == t0 + 60s);
  CHECK(parse_reset("1795608060000", t0) == t0 + 60s);
  CHECK(parse_reset("30", t0) == t0 + 30s);
  CHECK(parse_reset("1.5", t0) == t0 + 1500ms);
  CHECK(parse_reset("Wed, 25 Nov 2026 12:01:00 GMT", t0) == t0 + 60s);
  CHECK(parse_reset("Wednesday, 25-Nov-26 12:01:00 GMT", t0) == t0 + 60s);
  CHECK(!parse_reset("soon", t0));
  CHECK(!parse_reset("-5", t0));
  CHECK(!parse_reset("", t0));
  CHECK(!parse_http_date("Wed, 25 Nov 2026 12:01:00 CET"));
  CHECK(parse_retry_after("7", t0) == t0 + 7s);
  CHECK(parse_retry_after("Wed, 25 Nov 2026 12:00:10 GMT", t0) == t0 + 10s);
}

TEST_CASE("all three windows and Retry-After come out of the headers") {
  auto o = parse_headers(headers({{"X-RateLimit-Limit", "60"},
                                  {"X-RateLimit-Remaining", "59"},
                                  {"X-RateLimit-Reset", "1795608060"},
                                  {"X-RateLimit-Limit-Day", "10000"},
                                  {"X-RateLimit-Remaining-Day", "9990"},
                                  {"X-RateLimit-Reset-Day", "43200"},
                                  {"X-RateLimit-Limit-Parallel", "10"},
                                  {"X-RateLimit-Remaining-Parallel", "3"},
                                  {"Retry-After", "2"}}),
                         t0);
  CHECK(o.rpm.limit == 60);
  CHECK(o.rpm.remaining == 59);
  CHECK(o.rpm.reset_at == t0 + 60s);
  CHECK(o.daily.limit == 10000);
  CHECK(o.daily.remaining == 9990);
  CHECK(o.daily.reset_at == t0 + 12h);
  CHECK(o.parallel.limit == 10);
  CHECK(o.parallel.remaining == 3);
  CHECK(o.retry_after == t0 + 2s);
  SUBCASE("garbage values are ignored, not trusted") {
    auto bad = parse_headers(headers({{"X-RateLimit-Limit", "lots"}, {"X-RateLimit-Remaining", "-1"}}), t0);
    CHECK(!bad.rpm.limit);
    CHECK(!bad.rpm.remaining);
  }
  SUBCASE("IETF fields when the X- ones are absent") {
    auto ietf = parse_headers(headers({{"RateLimit", "limit=30, remaining=7, reset=12"}}), t0);
    CHECK(ietf.rpm.limit == 30);
    CHECK(ietf.rpm.remaining == 7);
    CHECK(ietf.rpm.reset_at == t0 + 12s);
    auto structured = parse_headers(
        headers({{"RateLimit", "\"default\";r=4;t=9"}, {"RateLimit-Policy", "\"default\";q=20;w=60"}}), t0);
    CHECK(structured.rpm.limit == 20);
    CHECK(structured.rpm.remaining == 4);
    CHECK(structured.rpm.reset_at == t0 + 9s);
  }
}

TEST_CASE("the plan is the starting point and headers then rule") {
  LimiterSettings settings;
  auto s = from_plan(60, 10, 10000);
  roll(s, t0, settings);
  auto a = submit_allowance(s, 0, 100, t0, settings);
  CHECK(a.count == 1);  // paced, not a burst of 100
  CHECK(a.blocked_by == Blocker::rpm);
  Observation downgrade;
  downgrade.rpm.limit = 10;
  downgrade.rpm.remaining = 2;
  downgrade.rpm.reset_at = t0 + 30s;
  downgrade.parallel.limit = 1;
  downgrade.daily.limit = 100;
  observe(s, downgrade, t0);
  CHECK(s.limits_source == "headers");
  CHECK(s.rpm_limit == 10);
  CHECK(s.parallel_limit == 1);
  CHECK(submit_allowance(s, 1, 100, t0, settings).count == 0);  // the one slot is taken
  CHECK(submit_allowance(s, 1, 100, t0, settings).blocked_by == Blocker::parallel);
  a = submit_allowance(s, 0, 100, t0, settings);
  CHECK(a.count == 1);
  take_submits(s, 1, t0, settings);
  CHECK(s.rpm_remaining == 1);
  // The last token of the window is paced to the middle of what is left (15 s).
  a = submit_allowance(s, 0, 100, t0 + 14s, settings);
  CHECK(a.count == 0);
  CHECK(a.retry_at == t0 + 15s);
  take_submits(s, submit_allowance(s, 0, 1, t0 + 15s, settings).count, t0 + 15s, settings);
  a = submit_allowance(s, 0, 1, t0 + 20s, settings);
  CHECK(a.count == 0);
  CHECK(a.retry_at == t0 + 30s);  // nothing left until the window resets
  roll(s, t0 + 30s, settings);
  CHECK(!s.rpm_remaining);
  CHECK(submit_allowance(s, 0, 1, t0 + 30s, settings).count == 1);
}

TEST_CASE("paced against a fixed-window server: the limit is used fully and never passed") {
  for (std::int64_t limit : {10, 30, 60}) {
    CAPTURE(limit);
    LimiterSettings settings;
    FixedWindowServer server{limit, 60s, t0 - 17s, {}};  // windows not aligned with us
    auto s = from_plan(limit, 0, 0);
    TimePoint now = t0;
    const TimePoint end = t0 + 10min;
    std::int64_t sent = 0;
    while (now < end) {
      roll(s, now, settings);
      auto a = submit_allowance(s, 0, 1, now, settings);
      if (a.count > 0) {
        take_submits(s, 1, now, settings);
        // The response arrives 20 ms later.
        observe(s, server.respond(now), now + 20ms);
        ++sent;
        now += 1ms;
      } else {
        now = std::max(now + 1ms, std::min(a.retry_at, end));
      }
    }
    for (auto [window, count] : server.sent_per_window) CHECK(count <= limit);
    // 10 windows (the first and last partial): within one window's worth of ideal.
    CHECK(sent >= limit * 10 - limit);
  }
}

TEST_CASE("polls stay within their share of the request rate") {
  LimiterSettings settings;
  settings.poll_share = 0.2;
  auto s = from_plan(60, 0, 0);
  roll(s, t0, settings);
  std::int64_t polls = 0;
  for (TimePoint now = t0; now < t0 + 10min; now += 100ms) {
    auto a = poll_allowance(s, 100, now, settings);
    if (a.count > 0) {
      take_polls(s, a.count, now, settings);
      polls += a.count;
    }
  }
  CHECK(polls <= 60 * 10 * 0.2 + 1);
  CHECK(polls >= 60 * 10 * 0.2 - 2);
}

TEST_CASE("a 429 pauses the window it names for as long as it says") {
  LimiterSettings settings;
  auto s = from_plan(10, 1, 100);
  roll(s, t0, settings);
  Observation o;
  o.retry_after = t0 + 7s;
  on_rate_limited(s, Window::rpm, o, t0, settings);
  CHECK(submit_allowance(s, 0, 1, t0 + 6s, settings).count == 0);
  CHECK(submit_allowance(s, 0, 1, t0 + 6s, settings).retry_at == t0 + 7s);
  roll(s, t0 + 7s, settings);
  CHECK(submit_allowance(s, 0, 1, t0 + 7s, settings).count == 1);

  Observation daily;
  daily.daily.reset_at = t0 + 3h;
  on_rate_limited(s, Window::daily, daily, t0 + 8s, settings);
  auto a = submit_allowance(s, 0, 1, t0 + 1h, settings);
  CHECK(a.count == 0);
  CHECK(a.blocked_by == Blocker::daily);
  CHECK(a.retry_at == t0 + 3h);
}

TEST_CASE("blocked by the day and by the request pace at once, the day holds whatever the tokens say") {
  LimiterSettings settings;
  auto s = from_plan(60, 0, 100);
  const TimePoint t0 = from_epoch_ms(1795600000000);
  roll(s, t0, settings);
  take_submits(s, 100, t0, settings);  // the day is spent and the pace is far ahead
  for (auto at : {t0 + 1s, t0 + 30s, t0 + 90s, t0 + 200s}) {
    CAPTURE(std::chrono::duration_cast<std::chrono::seconds>(at - t0).count());
    auto a = submit_allowance(s, 0, 1, at, settings);
    CHECK(a.count == 0);
    CHECK(a.blocked_by == Blocker::daily);
    CHECK(a.retry_at == *s.day_reset_at);
  }
}

TEST_CASE("the daily count resets at 00:00 UTC and follows the API's count") {
  LimiterSettings settings;
  auto s = from_plan(0, 0, 100);
  const TimePoint late = from_epoch_ms(1795651190000);  // 2026-11-25T23:59:50Z
  roll(s, late, settings);
  take_submits(s, 100, late, settings);
  auto a = submit_allowance(s, 0, 5, late + 1s, settings);
  CHECK(a.count == 0);
  CHECK(a.blocked_by == Blocker::daily);
  CHECK(a.retry_at == late + 10s);
  roll(s, late + 10s, settings);
  CHECK(submit_allowance(s, 0, 5, late + 10s, settings).count == 5);
  Observation o;
  o.daily.limit = 100;
  o.daily.remaining = 40;  // another client used 60 today
  observe(s, o, late + 11s);
  CHECK(submit_allowance(s, 0, 100, late + 11s, settings).count == 40);
  return_unaccepted(s, 3);
  CHECK(s.day_used == 57);
}

TEST_CASE("the request window: more room than requests on their way can explain is the API's count") {
  LimiterSettings settings;
  settings.answer_deadline = 30s;
  auto s = from_plan(60, 0, 0);
  roll(s, t0, settings);
  Observation first;
  first.rpm.limit = 60;
  first.rpm.remaining = 5;  // we have spent 55 of this window by its count
  first.rpm.reset_at = t0 + 50s;
  observe(s, first, t0, settings);
  REQUIRE(s.rpm_remaining == 5);
  // A late answer from earlier in the same window: at most 30 s of requests at one a
  // second (+1 burst) can be on their way, so 20 is explained and the lowest count stays.
  Observation stale = first;
  stale.rpm.remaining = 20;
  observe(s, stale, t0 + 1s, settings);
  CHECK(s.rpm_remaining == 5);
  // 50 left is more than any reordering explains: the API did not count what we did.
  Observation api = first;
  api.rpm.remaining = 50;
  observe(s, api, t0 + 2s, settings);
  CHECK(s.rpm_remaining == 50);
  CHECK(submit_allowance(s, 0, 1, t0 + 3s, settings).count == 1);
}
