// The simulator's account model with a fake clock: request windows, the daily reset at
// midnight UTC, parallel slots, credits with refunds, idempotency, seeded decisions.
#include "sim/state.hpp"

#include <doctest/doctest.h>

#include <chrono>

using namespace klingq::sim;
using namespace std::chrono_literals;

namespace {

TimePoint at(const char* iso) { return *parse_iso8601(iso); }

GenerateParams params(std::string prompt = "a cat", int duration = 5, std::string quality = "standard") {
  GenerateParams p;
  p.prompt = std::move(prompt);
  p.duration = duration;
  p.quality = std::move(quality);
  return p;
}

Submitted accepted(const SubmitOutcome& outcome) {
  REQUIRE(std::holds_alternative<Submitted>(outcome));
  return std::get<Submitted>(outcome);
}

ApiError refused(const SubmitOutcome& outcome) {
  REQUIRE(std::holds_alternative<ApiError>(outcome));
  return std::get<ApiError>(outcome);
}

Settings settings_for(Plan plan) {
  Settings s;
  s.plan = plan;
  s.credits = 100000;
  s.gen_min_seconds = 60;
  s.gen_max_seconds = 60;
  return s;
}

}  // namespace

TEST_CASE("the request window is fixed, aligned to the start, and refusals are not counted") {
  auto t0 = at("2026-03-01T10:00:00Z");
  Account account(settings_for(Plan::free), t0 + 17s);  // windows start at 10:00:17
  auto start = t0 + 17s;
  for (int i = 0; i < 10; ++i) CHECK_FALSE(account.admit_request(start + std::chrono::seconds(i)));
  auto refusal = account.admit_request(start + 30s);
  REQUIRE(refusal);
  CHECK(refusal->status == 429);
  CHECK(refusal->code == "RATE_LIMITED");
  CHECK(refusal->window == Window::rpm);
  CHECK(refusal->retry_at == start + 60s);
  CHECK(account.admit_request(start + 59s));  // still the same window, still refused
  CHECK(account.stats().rate_limited_rpm == 2);
  auto usage = account.usage(start + 59s);
  CHECK(usage.window_used == 10);  // the refusals did not count
  CHECK(usage.window_reset == start + 60s);
  // The next window opens exactly at start + 60 s.
  CHECK_FALSE(account.admit_request(start + 60s));
  CHECK(account.usage(start + 60s).window_used == 1);
  CHECK(account.usage(start + 60s).window_reset == start + 120s);
  CHECK(account.stats().max_window_requests_seen == 10);
}

TEST_CASE("a configurable window length") {
  auto s = settings_for(Plan::starter);
  s.window_seconds = 10;
  auto t0 = at("2026-03-01T10:00:00Z");
  Account account(s, t0);
  for (int i = 0; i < 30; ++i) CHECK_FALSE(account.admit_request(t0 + 1s));
  CHECK(account.admit_request(t0 + 9s));
  CHECK_FALSE(account.admit_request(t0 + 10s));
}

TEST_CASE("the daily limit counts accepted jobs and resets at 00:00 UTC of the simulated clock") {
  auto s = settings_for(Plan::free);
  s.daily = 3;
  s.parallel = 0;  // unlimited, so only the daily window can refuse
  s.gen_min_seconds = s.gen_max_seconds = 1;
  auto start = at("2026-03-01T23:59:00Z");
  Account account(s, start);
  for (int i = 0; i < 3; ++i) accepted(account.submit(start + std::chrono::seconds(i), nullptr, params()));
  auto e = refused(account.submit(start + 10s, nullptr, params()));
  CHECK(e.status == 429);
  CHECK(e.window == Window::daily);
  CHECK(e.retry_at == at("2026-03-02T00:00:00Z"));
  CHECK(account.usage(start + 10s).day_reset == at("2026-03-02T00:00:00Z"));
  CHECK(refused(account.submit(at("2026-03-01T23:59:59Z"), nullptr, params())).window == Window::daily);
  accepted(account.submit(at("2026-03-02T00:00:00Z"), nullptr, params()));
  CHECK(account.usage(at("2026-03-02T00:00:01Z")).day_used == 1);
  CHECK(account.stats().rate_limited_daily == 2);
}

TEST_CASE("parallel counts accepted jobs until they are terminal") {
  auto s = settings_for(Plan::starter);  // 3 parallel
  auto t0 = at("2026-03-01T10:00:00Z");
  Account account(s, t0);
  for (int i = 0; i < 3; ++i) accepted(account.submit(t0 + std::chrono::seconds(i), nullptr, params()));
  auto e = refused(account.submit(t0 + 10s, nullptr, params()));
  CHECK(e.window == Window::parallel);
  CHECK(e.retry_at == t0 + 60s);  // the first job ends 60 s after it started
  CHECK(account.usage(t0 + 10s).processing == 3);
  CHECK(account.usage(t0 + 10s).next_slot == t0 + 60s);
  // At t0 + 60 s the first job completes and frees its slot.
  accepted(account.submit(t0 + 60s, nullptr, params()));
  CHECK(account.stats().max_parallel_seen == 3);
  CHECK(account.jobs_with(JobStatus::completed) == 1);
  CHECK(account.jobs_with(JobStatus::processing) == 3);
}

TEST_CASE("plan limits follow the table of API.md - enterprise's custom limits are none") {
  CHECK(plan_limits(Plan::free).rpm == 10);
  CHECK(plan_limits(Plan::free).parallel == 1);
  CHECK(plan_limits(Plan::free).daily == 100);
  CHECK(plan_limits(Plan::starter).rpm == 30);
  CHECK(plan_limits(Plan::starter).parallel == 3);
  CHECK(plan_limits(Plan::starter).daily == 1000);
  CHECK(plan_limits(Plan::pro).rpm == 60);
  CHECK(plan_limits(Plan::pro).parallel == 10);
  CHECK(plan_limits(Plan::pro).daily == 10000);
  CHECK(plan_limits(Plan::enterprise).rpm == 0);
  CHECK(plan_limits(Plan::enterprise).parallel == 0);
  CHECK(plan_limits(Plan::enterprise).daily == 0);
  for (auto plan : {Plan::free, Plan::starter, Plan::pro, Plan::enterprise}) {
    CHECK(parse_plan(to_string(plan)) == plan);
  }
  CHECK_FALSE(parse_plan("platinum"));
  CHECK_FALSE(parse_plan("Free"));
}

TEST_CASE("credit costs follow the table of API.md") {
  CostTable table;
  CHECK(credit_cost(params("x", 5, "standard"), table) == 100);
  CHECK(credit_cost(params("x", 10, "standard"), table) == 200);
  CHECK(credit_cost(params("x", 5, "high"), table) == 300);
  CHECK(credit_cost(params("x", 10, "high"), table) == 500);
}

TEST_CASE("credits are charged on acceptance, refused when short, refunded on failure") {
  auto s = settings_for(Plan::pro);
  s.credits = 450;
  s.fail_rate = 1.0;  // every job fails
  auto t0 = at("2026-03-01T10:00:00Z");
  Account account(s, t0);
  auto job = accepted(account.submit(t0, nullptr, params("x", 5, "high")));
  CHECK(job.job->credit_cost == 300);
  CHECK(account.balance() == 150);
  accepted(account.submit(t0, nullptr, params("x", 5, "standard")));
  CHECK(account.balance() == 50);
  auto outcome = account.submit(t0, nullptr, params("x", 10, "standard"));
  auto short_of = refused(outcome);
  CHECK(short_of.status == 402);
  CHECK(short_of.code == "INSUFFICIENT_CREDITS");
  CHECK(short_of.extensions.at("creditsRequired").as_int64() == 200);
  CHECK(short_of.extensions.at("creditsAvailable").as_int64() == 50);
  CHECK(account.balance() == 50);  // 450 - 300 - 100 (the 5 s standard one was accepted)
  account.advance(t0 + 60s);
  auto finished = account.take_finished();
  REQUIRE(finished.size() == 2);
  CHECK(finished[0]->status == JobStatus::failed);
  CHECK_FALSE(finished[0]->error.empty());
  CHECK(account.balance() == 450);  // both refunded
  CHECK(account.stats().credits_spent == 0);
  CHECK(account.stats().credits_refunded == 400);
  CHECK(account.stats().payment_required == 1);
}

TEST_CASE("completed jobs get a CDN URL and their completion time") {
  auto s = settings_for(Plan::pro);
  auto t0 = at("2026-03-01T10:00:00Z");
  Account account(s, t0);
  auto id = accepted(account.submit(t0, nullptr, params())).job->id;
  CHECK(account.next_due() == t0 + 60s);
  account.advance(t0 + 59s);
  CHECK(account.find_job(id)->status == JobStatus::processing);
  account.advance(t0 + 61s);
  const Job* job = account.find_job(id);
  CHECK(job->status == JobStatus::completed);
  CHECK(job->url == "https://cdn.doitong.com/outputs/" + id + ".mp4");
  CHECK(job->completed_at == t0 + 60s);
  CHECK(account.balance() == 100000 - 100);
}

TEST_CASE("idempotency: replay, conflict, 24 h lifetime, duplicate-charge detector") {
  auto s = settings_for(Plan::free);  // 1 parallel: a replay must not need a slot
  s.daily = 0;
  auto t0 = at("2026-03-01T10:00:00Z");
  Account account(s, t0);
  std::string key = "k-1";
  auto first = accepted(account.submit(t0, &key, params("a cat")));
  CHECK_FALSE(first.replay);
  auto balance = account.balance();
  auto again = accepted(account.submit(t0 + 5s, &key, params("a cat")));
  CHECK(again.replay);
  CHECK(again.job->id == first.job->id);
  CHECK(account.balance() == balance);
  CHECK(account.stats().idempotent_replays == 1);
  CHECK(account.stats().accepted == 1);
  CHECK(account.usage(t0 + 5s).day_used == 1);
  auto conflict = refused(account.submit(t0 + 6s, &key, params("a dog")));
  CHECK(conflict.status == 409);
  CHECK(conflict.code == "CONFLICT");
  CHECK(conflict.message.find("k-1") != std::string::npos);
  CHECK(account.stats().conflicts == 1);
  CHECK(account.accepted_keys() == 1);
  // Option order does not make another body.
  std::string key2 = "k-2";
  auto a = params("x");
  a.options["camera"] = boost::json::object{{"pan", 1}, {"zoom", 2}};
  auto b = params("x");
  b.options["camera"] = boost::json::object{{"zoom", 2}, {"pan", 1}};
  account.advance(t0 + 61s);  // the first job ends: its slot is free
  accepted(account.submit(t0 + 61s, &key2, a));
  account.advance(t0 + 200s);
  CHECK(accepted(account.submit(t0 + 200s, &key2, b)).replay);
  // After 24 h the key is forgotten: a new job, and the detector counts the second charge.
  auto later = accepted(account.submit(t0 + 24h + 1s, &key, params("a cat")));
  CHECK_FALSE(later.replay);
  CHECK(later.job->id != first.job->id);
  CHECK(account.stats().duplicate_charges == 1);
}

TEST_CASE("without an Idempotency-Key every submit is a new job") {
  auto s = settings_for(Plan::pro);
  auto t0 = at("2026-03-01T10:00:00Z");
  Account account(s, t0);
  auto a = accepted(account.submit(t0, nullptr, params())).job->id;
  auto b = accepted(account.submit(t0, nullptr, params())).job->id;
  CHECK(a != b);
  CHECK(account.accepted_keys() == 0);
  CHECK(account.stats().duplicate_charges == 0);
}

TEST_CASE("a plan downgrade applies at once to the current windows") {
  auto t0 = at("2026-03-01T10:00:00Z");
  Account account(settings_for(Plan::pro), t0);
  for (int i = 0; i < 5; ++i) {
    CHECK_FALSE(account.admit_request(t0));
    accepted(account.submit(t0, nullptr, params()));
  }
  auto s = account.settings();
  s.plan = Plan::free;
  account.configure(s);
  CHECK(refused(account.submit(t0 + 1s, nullptr, params())).window == Window::parallel);
  for (int i = 0; i < 5; ++i) CHECK_FALSE(account.admit_request(t0 + 1s));  // 10 in the window
  CHECK(account.admit_request(t0 + 1s)->window == Window::rpm);
}

TEST_CASE("seeded decisions repeat - generation times stay in range") {
  auto s = settings_for(Plan::enterprise);
  s.gen_min_seconds = 10;
  s.gen_max_seconds = 20;
  s.fail_rate = 0.5;
  s.seed = 42;
  auto t0 = at("2026-03-01T10:00:00Z");
  Account a(s, t0), b(s, t0);
  int failures = 0;
  for (int i = 0; i < 200; ++i) {
    auto& ja = *accepted(a.submit(t0, nullptr, params())).job;
    auto& jb = *accepted(b.submit(t0, nullptr, params())).job;
    CHECK(ja.id == jb.id);
    CHECK(ja.due_at == jb.due_at);
    CHECK(ja.will_fail == jb.will_fail);
    CHECK(ja.due_at >= t0 + 10s);
    CHECK(ja.due_at <= t0 + 20s);
    failures += ja.will_fail;
  }
  CHECK(failures > 60);
  CHECK(failures < 140);
}

TEST_CASE("fault draws follow their rates and are counted") {
  auto s = settings_for(Plan::enterprise);
  s.faults.server_error = 0.25;
  s.faults.reset_after = 0.25;
  Account account(s, at("2026-03-01T10:00:00Z"));
  int none = 0, server = 0, reset = 0;
  for (int i = 0; i < 4000; ++i) {
    auto f = account.draw_fault();
    none += f == Fault::none;
    server += f == Fault::server_error;
    reset += f == Fault::reset_after;
  }
  CHECK(none + server + reset == 4000);
  CHECK(server > 800);
  CHECK(server < 1200);
  CHECK(reset > 800);
  CHECK(account.stats().faults.at("500") == server);
  CHECK(account.stats().faults.at("reset_after") == reset);
}

TEST_CASE("settings validation names the setting") {
  Settings s;
  s.faults.server_error = 0.7;
  s.faults.malformed = 0.7;
  CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("at most 1"), std::invalid_argument);
  s = Settings{};
  s.gen_min_seconds = 5;
  s.gen_max_seconds = 2;
  CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("gen-seconds"), std::invalid_argument);
  s = Settings{};
  s.fail_rate = 1.5;
  CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("fail-rate"), std::invalid_argument);
  s = Settings{};
  s.rpm = -1;
  CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("rpm"), std::invalid_argument);
}

TEST_CASE("outputs: video settings are validated like the faults") {
  Settings s;
  s.outputs.bytes = -1;
  CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("output-bytes"), std::invalid_argument);
  s = Settings{};
  s.outputs.bytes = std::int64_t{1} << 40;
  CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("output-bytes"), std::invalid_argument);
  s = Settings{};
  s.outputs.truncate = 2;
  CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("output-fault-truncate"), std::invalid_argument);
  s = Settings{};
  s.outputs.truncate = 0.6;
  s.outputs.server_error = 0.6;
  CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("at most 1"), std::invalid_argument);
}

TEST_CASE("the time scale maps both ways") {
  auto real0 = at("2026-01-01T00:00:00Z");
  auto sim0 = at("2030-06-30T23:59:55Z");
  TimeScale scale(real0, sim0, 100.0);
  CHECK(scale.to_sim(real0) == sim0);
  CHECK(scale.to_sim(real0 + 1s) == sim0 + 100s);
  CHECK(scale.to_real(sim0 + 60s) == real0 + 600ms);
  CHECK(scale.to_real(scale.to_sim(real0 + 1234ms)) == real0 + 1234ms);
  CHECK(format_iso8601(sim0) == "2030-06-30T23:59:55Z");
  CHECK(parse_iso8601("2030-06-30T23:59:55.250Z") == sim0 + 250ms);
  CHECK_FALSE(parse_iso8601("2030-06-30 nope"));
  CHECK_FALSE(parse_iso8601("2030-13-01T00:00:00Z"));
}
