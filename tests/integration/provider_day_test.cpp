// The provider's day begins at another hour than 00:00 UTC (a UTC+8 provider: 16:00 UTC),
// end to end: real PostgreSQL, klingq-sim with --day-starts-at, the real klingqd. The
// simulator's clock is pinned (--clock-start) so its day begins mid-run, 15 s after it
// starts, whatever the wall clock says. klingqd's own assumption is pinned too
// (limits.day_starts_at 12 hours from now), so only what the API says can end the hold.
#include "support/stack.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>

using namespace klingq::testing;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

long long stat(const json::object& stats, const char* key) { return stats.at(key).to_number<long long>(); }

bool all_terminal(Stack& stack) {
  return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state NOT IN ('completed', 'failed', 'cancelled')") == 0;
}

long long completed(Stack& stack) {
  return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'");
}

// Twelve hours from now as limits.day_starts_at: an assumed reset no test run reaches.
std::string far_day_start() {
  auto now = std::chrono::system_clock::now() + 12h;
  auto minutes = std::chrono::duration_cast<std::chrono::minutes>(now - std::chrono::floor<std::chrono::days>(now)).count();
  char text[16];
  std::snprintf(text, sizeof text, "\"%02d:%02dZ\"", static_cast<int>(minutes / 60), static_cast<int>(minutes % 60));
  return text;
}

// 60 simulated seconds a real one; the provider's day begins at 16:00 UTC, 15 s (real)
// after the simulator starts; the next one is 24 simulated hours (24 real minutes) away.
// A parallel limit bounds how far answers can be reordered (the limiter's margin);
// without one (0) a low count must be confirmed by a later request.
std::vector<std::string> sim_arguments(int daily, bool reset_day_header, int parallel) {
  return {"--plan", "enterprise", "--rpm", "0", "--parallel", std::to_string(parallel), "--daily", std::to_string(daily),
          "--time-scale", "60", "--gen-seconds", "1:1", "--clock-start", "2026-11-25T15:45:00Z",
          "--day-starts-at", "16:00", "--reset-day-header", reset_day_header ? "yes" : "no"};
}

// refresh_seconds "300" (klingq's default; the stack's is 1): only the hold's look-again,
// at least once a minute, asks the API for its count while the daily cap holds.
std::map<std::string, std::string> daemon_config(Stack& stack, int daily, int parallel, const std::string& instance,
                                                 const std::string& refresh_seconds) {
  return stack.with_webhooks({{"limits.plan", "enterprise"},
                              {"limits.parallel", std::to_string(parallel)},
                              {"limits.daily", std::to_string(daily)},
                              {"limits.day_starts_at", far_day_start()},
                              {"credits.refresh_seconds", refresh_seconds},
                              {"dispatch.instance_id", "\"" + instance + "\""}});
}

// Runs `daemons` instances over `jobs` rows, `daily` a day: the first day's share drains,
// the rest is held (not failed) until the simulator's day begins, then drains too.
// `drained_within`: from the first day's drain; the simulator's day begins about 13 s later.
void run_day_start(bool reset_day_header, int daemons, int daily, int parallel, int jobs,
                   const std::string& refresh_seconds, std::chrono::milliseconds drained_within) {
  Stack stack(sim_arguments(daily, reset_day_header, parallel));
  stack.insert_jobs(jobs);
  for (int i = 0; i < daemons; ++i) {
    stack.start_daemon(daemon_config(stack, daily, parallel, "instance-" + std::to_string(i), refresh_seconds));
  }
  REQUIRE(Stack::wait_until([&] { return completed(stack) == daily; }, 14s));
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'queued'") == jobs - daily);
  // Well before the assumed reset (12 h away) and before a second simulated day (24 min).
  REQUIRE(Stack::wait_until([&] { return all_terminal(stack); }, drained_within));
  auto stats = stack.sim_stats();
  CHECK(stats.at("rate_limited").at("daily").to_number<long long>() == 0);  // never faster
  CHECK(stat(stats, "accepted") == jobs);
  CHECK(stat(stats, "duplicate_charges") == 0);
  CHECK(stack.scalar("SELECT count(DISTINCT remote_id) FROM klingq.jobs WHERE remote_id IS NOT NULL") == jobs);
  // What was learned is in the account row, for a restart and for the other instances.
  CHECK(stack.scalar("SELECT count(*) FROM klingq.account WHERE day_start_ms IS NOT NULL") == 1);
  CHECK(stack.text("SELECT day_reset_reported::text FROM klingq.account") == (reset_day_header ? "true" : "false"));
  CHECK(stack.scalar("SELECT day_used FROM klingq.account") == jobs - daily);
}

}  // namespace

TEST_CASE("dispatch: the provider's day begins mid-run and its Reset-Day header ends the hold") {
  // The header says when: no balance query is needed to see the day begin.
  run_day_start(true, 1, 5, 2, 8, "300", 40s);
}

TEST_CASE("dispatch: the provider's day begins mid-run without a Reset-Day header: its count ends the hold") {
  // Balance queries every 300 s: the hold's look-again, at most a minute after the last,
  // is what sees the day begin (the day begins ~13 s into the hold).
  run_day_start(false, 1, 5, 2, 8, "300", 90s);
}

TEST_CASE("dispatch: three instances learn the provider's day from its count without a 429") {
  // No parallel limit and a balance query every second from each instance (the stack's
  // setting): three instances submitting at once is the reordering a low count must
  // survive, and any instance's later reading confirms another's.
  run_day_start(false, 3, 6, 0, 10, "1", 40s);
}
