// The batch ETA (lib/eta) against hand-computed cases on a fake clock. Each case says
// the arithmetic it expects; 2026-01-01 is a Thursday.
#include "eta/eta.hpp"

#include <doctest/doctest.h>

using namespace klingq;
using namespace std::chrono;
using klingq::eta::Holder;

namespace {

TimePoint utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
  return time_point_cast<Duration>(sys_days(year(y) / month(mo) / day(d)) + hours(h) + minutes(mi) + seconds(s));
}

eta::Inputs base(TimePoint now) {
  eta::Inputs in;
  in.now = now;
  in.limits.rpm = 60;
  in.limits.window_seconds = 60;
  in.limits.day_ends = utc(2026, 1, 2);
  in.generation_seconds = 60;
  return in;
}

}  // namespace

TEST_CASE("eta: request-bound, 120 jobs at 60 a minute finish 2 min + one generation later") {
  auto in = base(utc(2026, 1, 1));
  in.jobs_left = 120;
  auto e = eta::estimate(in);
  CHECK(e.held_by == Holder::rpm);
  REQUIRE(e.done_at);
  CHECK(*e.done_at == utc(2026, 1, 1, 0, 3, 0));  // 120 s of submits + 60 s generation
  CHECK(e.text == "requests per minute: done 00:03 UTC");
}

TEST_CASE("eta: parallel-bound, 5 slots of 60 s generations are 5 jobs a minute") {
  auto in = base(utc(2026, 1, 1));
  in.limits.rpm = 600;
  in.limits.parallel = 5;
  in.jobs_left = 100;
  auto e = eta::estimate(in);
  CHECK(e.held_by == Holder::parallel);
  REQUIRE(e.done_at);
  CHECK(*e.done_at == utc(2026, 1, 1, 0, 21, 0));  // 100 / (5/60 s) = 1200 s, + 60 s
  CHECK(e.text == "parallel limit: done 00:21 UTC");
}

TEST_CASE("eta: the daily cap spills the batch into later days from the provider's day start") {
  // Thursday 12:00, the day begins at 16:00 UTC, 80 of 100 used: 20 go today, 100 on
  // Friday's day (from Thursday 16:00), the last 30 from Friday 16:00 at 1/s.
  auto in = base(utc(2026, 1, 1, 12));
  in.limits.daily = 100;
  in.limits.day_used = 80;
  in.limits.day_ends = utc(2026, 1, 1, 16);
  in.jobs_left = 150;
  auto e = eta::estimate(in);
  CHECK(e.held_by == Holder::daily);
  REQUIRE(e.done_at);
  CHECK(*e.done_at == utc(2026, 1, 2, 16, 1, 30));
  CHECK(e.text == "daily cap: done Friday 16:01 UTC");
}

TEST_CASE("eta: a million jobs at 100 a day is 10,000 days, computed without 10,000 turns") {
  auto in = base(utc(2026, 1, 1));
  in.limits.daily = 100;
  in.jobs_left = 1'000'000;
  auto e = eta::estimate(in);
  CHECK(e.held_by == Holder::daily);
  REQUIRE(e.done_at);
  // 100 today; the other 999,900 take 9,999 days from Friday 00:00: the last 100 go on the
  // day that begins 9,998 days after Friday, done 100 s + one 60 s generation into it.
  CHECK(*e.done_at == utc(2026, 1, 2) + days(9998) + seconds(160));
  CHECK(e.text.rfind("daily cap: done ", 0) == 0);
}

TEST_CASE("eta: jobs ahead of the batch (higher or equal priority) are taken first") {
  auto in = base(utc(2026, 1, 1));
  in.jobs_ahead = 60;
  in.jobs_left = 60;
  in.generation_seconds = 0;
  auto e = eta::estimate(in);
  REQUIRE(e.done_at);
  CHECK(*e.done_at == utc(2026, 1, 1, 0, 2, 0));
}

TEST_CASE("eta: polls sharing the window slow submits down") {
  auto in = base(utc(2026, 1, 1));
  in.limits.requests_per_job = 1.25;  // poll.share 0.2 without webhooks
  in.jobs_left = 48;                  // 48 jobs * 1.25 requests = 60 requests = 60 s
  in.generation_seconds = 0;
  auto e = eta::estimate(in);
  REQUIRE(e.done_at);
  CHECK(*e.done_at == utc(2026, 1, 1, 0, 1, 0));
}

TEST_CASE("eta: credits that cannot pay for every job say after how many they run out") {
  auto in = base(utc(2026, 1, 1));
  in.jobs_left = 5000;
  in.credits.balance = 430'000;
  in.credits.reserve = 10'000;
  in.credits.cost_per_job = 100;  // (430,000 - 10,000) / 100 = 4,200
  auto e = eta::estimate(in);
  CHECK(e.held_by == Holder::credits);
  CHECK_FALSE(e.done_at);
  CHECK(e.jobs_payable == 4200);
  CHECK(e.text == "credits run out after 4,200 more jobs");

  // The jobs ahead are paid first.
  in.credits.cost_ahead = 20'000;
  CHECK(eta::estimate(in).text == "credits run out after 4,000 more jobs");
  // Enough credits: the limits decide again.
  in.credits.balance = 10'000'000;
  CHECK(eta::estimate(in).held_by == Holder::rpm);
}

TEST_CASE("eta: a batch budget binds before the balance when it pays for fewer jobs") {
  auto in = base(utc(2026, 1, 1));
  in.jobs_left = 10;
  in.credits.cost_per_job = 300;
  in.credits.budget_left = 1000;  // 3 jobs
  in.credits.balance = 1200;      // 4 jobs
  auto e = eta::estimate(in);
  CHECK(e.held_by == Holder::budget);
  CHECK(e.jobs_payable == 3);
  CHECK(e.text == "budget runs out after 3 more jobs");
  in.credits.balance = 600;  // 2 jobs: the balance is shorter
  CHECK(eta::estimate(in).text == "credits run out after 2 more jobs");
  in.credits.budget_left = 100'000;
  in.credits.balance = 1'000'000;
  CHECK(eta::estimate(in).held_by == Holder::rpm);
}

TEST_CASE("eta: paused, halted, done and unlimited") {
  auto in = base(utc(2026, 1, 1));
  in.jobs_left = 10;
  in.paused = true;
  CHECK(eta::estimate(in).held_by == Holder::paused);
  CHECK_FALSE(eta::estimate(in).done_at);
  in.halted = true;
  CHECK(eta::estimate(in).held_by == Holder::halted);
  in = base(utc(2026, 1, 1));
  CHECK(eta::estimate(in).held_by == Holder::done);
  CHECK(eta::estimate(in).text == "done");
  // Only in flight: one generation time.
  in.in_flight = 3;
  REQUIRE(eta::estimate(in).done_at);
  CHECK(*eta::estimate(in).done_at == utc(2026, 1, 1, 0, 1, 0));
  // No limit at all.
  in.limits.rpm = 0;
  in.jobs_left = 1000;
  auto e = eta::estimate(in);
  CHECK(e.held_by == Holder::none);
  CHECK(e.text == "done 00:01 UTC");
}

TEST_CASE("eta: a request window other than a minute is named as such") {
  auto in = base(utc(2026, 1, 1));
  in.limits.rpm = 10;
  in.limits.window_seconds = 10;
  in.jobs_left = 60;
  in.generation_seconds = 0;
  auto e = eta::estimate(in);
  CHECK(e.text == "request window: done 00:01 UTC");
}

TEST_CASE("eta: when_text names the day only when it is not today") {
  auto now = utc(2026, 1, 1, 9);
  CHECK(eta::when_text(utc(2026, 1, 1, 14, 10), now) == "14:10 UTC");
  CHECK(eta::when_text(utc(2026, 1, 2, 14, 10), now) == "Friday 14:10 UTC");
  CHECK(eta::when_text(utc(2026, 1, 7, 14, 10), now) == "Wednesday 14:10 UTC");
  CHECK(eta::when_text(utc(2026, 1, 8, 14, 10), now) == "2026-01-08 14:10 UTC");
  CHECK(eta::thousands(4200) == "4,200");
  CHECK(eta::thousands(999) == "999");
  CHECK(eta::thousands(1234567) == "1,234,567");
}

TEST_CASE("eta: a paused batch has no finish time and is ahead of nobody") {
  eta::Account account;
  account.limits.rpm = 60;
  account.limits.window_seconds = 60;
  account.limits.day_ends = utc(2026, 1, 2);
  account.generation_seconds = 0;
  // Both at priority 0, 60 queued each: "a" is paused, so "b" goes alone (60 s).
  std::vector<eta::BatchQueue> batches = {{60, 0, 0, 0, std::nullopt, true}, {60, 0, 0, 0, std::nullopt, false}};
  auto e = eta::estimate_batches(account, batches, utc(2026, 1, 1));
  CHECK(e[0].held_by == Holder::paused);
  CHECK(e[0].text == "batch paused: no finish time until it resumes");
  REQUIRE(e[1].done_at);
  CHECK(*e[1].done_at == utc(2026, 1, 1, 0, 1, 0));
  // Unpaused, each has the other's 60 ahead.
  batches[0].paused = false;
  e = eta::estimate_batches(account, batches, utc(2026, 1, 1));
  CHECK(*e[1].done_at == utc(2026, 1, 1, 0, 2, 0));
}
