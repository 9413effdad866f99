// The provider's day in the pure limiter (fake clock): a day that begins at another
// hour than 00:00 UTC, learned from the API's Remaining-Day, told by Reset-Day or by
// limits.day_starts_at, and never taken for a new day when submits on the wire or
// reordered responses explain the extra room.
#include "ratelimit/limiter.hpp"

#include <doctest/doctest.h>

using namespace klingq;
using namespace klingq::ratelimit;
using namespace std::chrono_literals;

namespace {
// 2026-11-25T00:00:00Z.
const TimePoint midnight = from_epoch_ms(1795564800000);

Observation remaining_day(std::int64_t limit, std::int64_t remaining) {
  Observation o;
  o.daily.limit = limit;
  o.daily.remaining = remaining;
  return o;
}

// A daily-bound account (5 a day, 1 parallel) that spent its day by 10:00 UTC.
AccountState spent_day(const LimiterSettings& settings) {
  auto s = from_plan(0, 1, 5);
  roll(s, midnight + 10h, settings);
  take_submits(s, 5, midnight + 10h, settings);
  observe(s, remaining_day(5, 0), midnight + 10h + 1s);
  return s;
}
}  // namespace

TEST_CASE("ratelimit: next_day_start finds the next start of a day that begins at any hour") {
  CHECK(next_day_start(midnight + 3h, 0s) == midnight + 24h);
  CHECK(next_day_start(midnight, 0s) == midnight + 24h);  // strictly after
  CHECK(next_day_start(midnight + 3h, 16h) == midnight + 16h);
  CHECK(next_day_start(midnight + 16h, 16h) == midnight + 40h);
  CHECK(next_day_start(midnight + 17h, 16h) == midnight + 40h);
  CHECK(next_day_start(midnight - 1h, 16h) == midnight + 16h);
  CHECK(next_day_start(midnight + 5h, 5h + 30min) == midnight + 5h + 30min);
}

TEST_CASE("ratelimit: without a Reset-Day the API's room again starts the day and teaches its hour") {
  LimiterSettings settings;
  auto s = spent_day(settings);
  CHECK(day_reset_assumed(s));
  CHECK(s.day_reset_at == midnight + 24h);  // assumed: 00:00 UTC
  auto held = submit_allowance(s, 0, 1, midnight + 12h, settings);
  CHECK(held.count == 0);
  CHECK(held.blocked_by == Blocker::daily);

  // 16:00:20 UTC: a balance query's answer shows the whole day again (a UTC+8 provider).
  const auto seen = midnight + 16h + 20s;
  roll(s, seen, settings);
  observe(s, remaining_day(5, 5), seen);
  CHECK(s.day_used == 0);
  CHECK(s.day_start_offset == 16h + 20s);
  CHECK(s.day_reset_at == midnight + 40h + 20s);  // tomorrow, at the hour it was seen
  CHECK(day_reset_assumed(s));
  CHECK(submit_allowance(s, 0, 1, seen, settings).count == 1);

  // Tomorrow the learned hour resets the count without waiting for 00:00 UTC, and never
  // before the hour the API was seen to begin its day.
  take_submits(s, 5, seen + 1h, settings);
  roll(s, midnight + 40h, settings);
  CHECK(submit_allowance(s, 0, 1, midnight + 40h, settings).count == 0);
  roll(s, midnight + 40h + 20s, settings);
  CHECK(s.day_used == 0);
  CHECK(s.day_reset_at == midnight + 64h + 20s);
  CHECK(submit_allowance(s, 0, 1, midnight + 40h + 20s, settings).count == 1);
}

TEST_CASE("ratelimit: a Reset-Day header rules over the assumed and the learned day") {
  LimiterSettings settings;
  settings.day_starts_at = 3h;
  auto s = spent_day(settings);
  CHECK(s.day_reset_at == midnight + 27h);  // configured: 03:00 UTC
  CHECK(day_reset_assumed(s));
  auto o = remaining_day(5, 0);
  o.daily.reset_at = midnight + 16h;
  observe(s, o, midnight + 10h + 2s);
  CHECK(!day_reset_assumed(s));
  CHECK(s.day_reset_at == midnight + 16h);
  CHECK(s.day_start_offset == 16h);
  CHECK(submit_allowance(s, 0, 1, midnight + 15h, settings).retry_at == midnight + 16h);
  roll(s, midnight + 16h, settings);
  CHECK(s.day_used == 0);
  // The next day is assumed again, at the hour the header taught.
  CHECK(s.day_reset_at == midnight + 40h);
  CHECK(day_reset_assumed(s));
}

TEST_CASE("ratelimit: limits.day_starts_at sets the assumed reset until the API teaches another") {
  LimiterSettings settings;
  settings.day_starts_at = 16h;
  auto s = from_plan(0, 1, 5);
  roll(s, midnight + 10h, settings);
  CHECK(s.day_reset_at == midnight + 16h);
  take_submits(s, 5, midnight + 10h, settings);
  auto a = submit_allowance(s, 0, 1, midnight + 11h, settings);
  CHECK(a.count == 0);
  CHECK(a.retry_at == midnight + 16h);
  roll(s, midnight + 16h, settings);
  CHECK(s.day_used == 0);
  CHECK(s.day_reset_at == midnight + 40h);
  CHECK(!s.day_start_offset);  // the count agreed with the configured hour: nothing learned
}

TEST_CASE("ratelimit: room explained by submits on the wire or reordered answers is not a new day") {
  LimiterSettings settings;
  auto s = from_plan(0, 3, 10);
  roll(s, midnight + 10h, settings);
  take_submits(s, 10, midnight + 10h, settings);
  // Three submits unanswered, and three more parallel slots' worth of reordering: an
  // answer showing 6 left (API counted 4 of our 10) is still today.
  s.day_unanswered = 3;
  observe(s, remaining_day(10, 6), midnight + 10h + 1s);
  CHECK(s.day_used == 10);
  CHECK(!s.day_start_offset);
  CHECK(s.day_reset_at == midnight + 24h);
  // One more than that cannot be explained: the day began; the unanswered still count.
  observe(s, remaining_day(10, 7), midnight + 10h + 2s);
  CHECK(s.day_used == 3 + 3);
  CHECK(s.day_start_offset == 10h + 2s);
}

TEST_CASE("ratelimit: a daily 429 that says when the day begins teaches it and ends the pause then") {
  LimiterSettings settings;
  auto s = spent_day(settings);
  Observation o;
  o.retry_after = midnight + 16h;
  on_rate_limited(s, Window::daily, o, midnight + 11h, settings);
  CHECK(s.day_reset_at == midnight + 16h);
  CHECK(s.day_start_offset == 16h);
  CHECK(submit_allowance(s, 0, 1, midnight + 15h, settings).count == 0);
  roll(s, midnight + 16h, settings);
  CHECK(submit_allowance(s, 0, 1, midnight + 16h, settings).count == 1);
  CHECK(s.day_reset_at == midnight + 40h);
}

TEST_CASE("ratelimit: without a parallel limit a low count is believed once no submit can be on its way") {
  LimiterSettings settings;
  settings.answer_deadline = 30s;
  auto s = from_plan(0, 0, 10);  // parallel unlimited: nothing bounds reordering
  roll(s, midnight + 10h, settings);
  take_submits(s, 10, midnight + 10h, settings);
  CHECK(s.day_submitted_at == midnight + 10h);
  // A stale answer (the API produced it before most of our submits) reads low: with
  // submits answered while it was on its way, it proves nothing.
  observe(s, remaining_day(10, 8), midnight + 10h + 1s, settings);
  CHECK(s.day_used == 10);
  observe(s, remaining_day(10, 8), midnight + 10h + 60s, settings);
  CHECK(s.day_used == 10);
  CHECK(!s.day_start_offset);

  // Two answer deadlines without a submit: every answer now is to a request sent after
  // the last submit was answered. The API's day begins at 16:00.
  observe(s, remaining_day(10, 10), midnight + 16h, settings);
  CHECK(s.day_used == 0);
  CHECK(s.day_start_offset == 16h);
  CHECK(s.day_reset_at == midnight + 40h);
}

TEST_CASE("ratelimit: a count a little lower than ours is the API's, not a new day") {
  // A submit whose answer was lost stays counted (the API may have it); when the quiet
  // API says it has one more than that, it is right, and the day's hour is untouched.
  LimiterSettings settings;
  auto s = spent_day(settings);
  observe(s, remaining_day(5, 1), midnight + 12h, settings);
  CHECK(s.day_used == 4);
  CHECK(!s.day_start_offset);
  CHECK(s.day_reset_at == midnight + 24h);
  CHECK(submit_allowance(s, 0, 5, midnight + 12h, settings).count == 1);
}
