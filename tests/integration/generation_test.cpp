// Generation times learned from the account's history (schema/012, the poller's model):
// kept in the database, read by another connection (a restart, another instance), used
// to place polls; a poll's completion counts the middle of its last two polls; a claim
// held by capacity lets polls use the request budget. Real PostgreSQL, transactions
// called directly; and one klingqd draining a parallel-bound batch by polls alone.
#include "dispatcher/transactions.hpp"
#include "support/pg_cluster.hpp"
#include "support/stack.hpp"

#include <doctest/doctest.h>
#include <pqxx/pqxx>

using klingq::testing::PgCluster;
using klingq::testing::Stack;
using namespace klingq;
using namespace std::chrono_literals;

namespace {

dispatcher::QueueSettings settings_for(const std::string& instance) {
  dispatcher::QueueSettings s;
  s.instance = instance;
  s.plan = {0, 0, 0};
  return s;
}

api::Outcome accepted(const std::string& remote_id) {
  api::Outcome o;
  o.outcome = api::OutcomeClass::accepted;
  o.http_status = 200;
  o.remote_id = remote_id;
  o.credit_cost = 100;
  return o;
}

void run(pqxx::connection& c, const std::string& sql) {
  pqxx::work tx(c);
  tx.exec(sql);
  tx.commit();
}

double number(pqxx::connection& c, const std::string& sql) {
  pqxx::read_transaction tx(c);
  return tx.exec1(sql)[0].as<double>();
}

// Submits `n` jobs (no webhook) and returns their claims.
std::vector<dispatcher::ClaimedJob> submit(pqxx::connection& c, const dispatcher::QueueSettings& settings, int n,
                                           const std::string& prefix,
                                           const dispatcher::GenerationModel& model = {}) {
  run(c, "INSERT INTO klingq.jobs (prompt) SELECT 'prompt ' || g FROM generate_series(1, " + std::to_string(n) + ") g");
  auto claim = dispatcher::claim(c, settings, n);
  REQUIRE(claim.jobs.size() == static_cast<std::size_t>(n));
  std::vector<dispatcher::SubmitInput> inputs;
  for (std::size_t i = 0; i < claim.jobs.size(); ++i) {
    inputs.push_back({claim.jobs[i], accepted(prefix + std::to_string(i)), {}, 0.5});
  }
  for (const auto& record : dispatcher::record_submits(c, settings, inputs, model)) {
    REQUIRE(record.new_state == "submitted");
  }
  return claim.jobs;
}

}  // namespace

TEST_CASE("generation times are learned from completions, kept in the database and place the next polls") {
  const auto url = PgCluster::shared().migrated_database();
  pqxx::connection c(url);
  auto settings = settings_for("generation-test");
  dispatcher::ensure_account(c, settings);
  dispatcher::set_balance(c, settings, 1'000'000);
  submit(c, settings, 20, "gen-");
  // Job i was submitted 10 + i seconds ago; its webhook says it is done now.
  run(c, "UPDATE klingq.jobs SET submitted_at = now() - make_interval(secs => 10 + "
         "(substr(remote_id, 5)::int))");
  for (int i = 0; i < 20; ++i) {
    api::Completion done{"gen-" + std::to_string(i), "completed", "https://cdn.example/v.mp4", "{}", "", false};
    REQUIRE(dispatcher::apply_completion(c, settings, done).result == dispatcher::CompletionResult::applied);
  }
  CHECK(number(c, "SELECT min(generation_ms) FROM klingq.jobs") == doctest::Approx(10000).epsilon(0.02));
  CHECK(number(c, "SELECT max(generation_ms) FROM klingq.jobs") == doctest::Approx(29000).epsilon(0.02));

  auto model = dispatcher::refresh_generation_model(c, settings);
  auto times = model.find({"standard", 5, ""});
  REQUIRE(times.has_value());
  CHECK(times->samples == 20);
  const auto seconds = [](Duration d) { return std::chrono::duration<double>(d).count(); };
  CHECK(seconds(times->p50) == doctest::Approx(19.5).epsilon(0.02));  // 10..29 s
  CHECK(seconds(times->p25) == doctest::Approx(14.75).epsilon(0.02));

  // Another instance (or this one after a restart) reads the same figures at once.
  pqxx::connection other(url);
  pqxx::read_transaction tx(other);
  CHECK(tx.exec1("SELECT samples FROM klingq.generation_times WHERE mode = 'standard' AND duration = 5 "
                 "AND version = ''")[0]
            .as<int>() == 20);
  tx.commit();

  // A new job without webhook: its first poll goes to the 30 % point, 15.7 s after submit.
  submit(c, settings, 1, "next-", model);
  CHECK(number(c, "SELECT extract(epoch FROM next_poll_at - submitted_at) FROM klingq.jobs WHERE remote_id = 'next-0'") ==
        doctest::Approx(14.75 + (19.5 - 14.75) * 0.2).epsilon(0.02));
}

TEST_CASE("a completion a poll found counts the middle of the last two polls as its generation time") {
  pqxx::connection c(PgCluster::shared().migrated_database());
  auto settings = settings_for("midpoint-test");
  dispatcher::ensure_account(c, settings);
  dispatcher::set_balance(c, settings, 10'000);
  submit(c, settings, 2, "mid-");
  // Polled 10 s and 4 s ago: the first said processing, the second finds it done.
  run(c, "UPDATE klingq.jobs SET submitted_at = now() - interval '20 s', prior_polled_at = now() - interval '10 s', "
         "polled_at = now() - interval '4 s'");
  api::Completion by_poll{"mid-0", "completed", "https://cdn.example/v.mp4", "{}", "", true};
  REQUIRE(dispatcher::apply_completion(c, settings, by_poll).result == dispatcher::CompletionResult::applied);
  CHECK(number(c, "SELECT generation_ms FROM klingq.jobs WHERE remote_id = 'mid-0'") ==
        doctest::Approx(13000).epsilon(0.01));  // (20 - 10 + 20 - 4) / 2
  // A failed job teaches nothing about generation time.
  api::Completion failed{"mid-1", "failed", "", "{}", "moderation", true};
  REQUIRE(dispatcher::apply_completion(c, settings, failed).result == dispatcher::CompletionResult::applied);
  CHECK(number(c, "SELECT count(*) FROM klingq.jobs WHERE remote_id = 'mid-1' AND generation_ms IS NULL") == 1);
}

TEST_CASE("a poll claim records when each poll went and schedules the next from the model") {
  pqxx::connection c(PgCluster::shared().migrated_database());
  auto settings = settings_for("poll-claim-test");
  settings.first_poll = 0s;  // due at once (the floor of min_poll_interval still holds)
  settings.min_poll_interval = 100ms;
  dispatcher::ensure_account(c, settings);
  dispatcher::set_balance(c, settings, 10'000);
  submit(c, settings, 1, "pc-");
  run(c, "UPDATE klingq.jobs SET next_poll_at = now() - interval '1 s', submitted_at = now() - interval '30 s'");
  std::map<dispatcher::GenerationKey, dispatcher::GenerationTimes> kinds;
  kinds[{"standard", 5, ""}] = {100, 10s, 20s, 40s, 60s, 80s, 100s};
  const dispatcher::GenerationModel model(kinds);
  auto polls = dispatcher::claim_polls(c, settings, 10, model);
  REQUIRE(polls.jobs.size() == 1);
  // Its second poll (polls_sent 1) aims at the 55 % point: 40 + 20 * 0.2 = 44 s after submit.
  CHECK(number(c, "SELECT extract(epoch FROM next_poll_at - submitted_at) FROM klingq.jobs") ==
        doctest::Approx(44.0).epsilon(0.01));
  CHECK(number(c, "SELECT count(*) FROM klingq.jobs WHERE polls = 1 AND polled_at IS NOT NULL "
                  "AND prior_polled_at IS NULL") == 1);
}

TEST_CASE("a claim held by the parallel limit lets polls use the request budget, and one that is not ends it") {
  pqxx::connection c(PgCluster::shared().migrated_database());
  auto settings = settings_for("capacity-test");
  settings.plan = {0, 1, 0};  // no request limit: only the parallel one holds
  dispatcher::ensure_account(c, settings);
  dispatcher::set_balance(c, settings, 10'000);
  run(c, "INSERT INTO klingq.jobs (prompt) SELECT 'p' || g FROM generate_series(1, 3) g");
  auto first = dispatcher::claim(c, settings, 3);
  CHECK(first.jobs.size() == 1);
  CHECK(first.held_by == dispatcher::Hold::parallel);
  CHECK(number(c, "SELECT count(*) FROM klingq.account WHERE capacity_held_at IS NOT NULL") == 1);
  // The slot frees (the job is cancelled) and the next claim takes one without being held.
  run(c, "UPDATE klingq.jobs SET state = 'cancelled' WHERE state = 'dispatching'");
  run(c, "DELETE FROM klingq.jobs WHERE state = 'queued' AND id = (SELECT max(id) FROM klingq.jobs)");
  auto second = dispatcher::claim(c, settings, 1);
  CHECK(second.jobs.size() == 1);
  CHECK(second.held_by == dispatcher::Hold::none);
  CHECK(number(c, "SELECT count(*) FROM klingq.account WHERE capacity_held_at IS NULL") == 1);
}

TEST_CASE("polling alone: a parallel-bound batch drains with few polls a job and no 429, and teaches the model") {
  // 60x simulator: 3..9 simulated minutes of generation are 3..9 s here.
  Stack stack({"--plan", "enterprise", "--rpm", "600", "--parallel", "4", "--daily", "0", "--time-scale", "60",
               "--gen-seconds", "180:540"});
  stack.insert_jobs(24);
  stack.start_daemon({{"limits.plan", "enterprise"},
                      {"poll.first_after_seconds", "2"},
                      {"poll.max_interval_seconds", "60"},
                      {"poll.min_interval_ms", "200"}});
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 24; },
                            std::chrono::seconds(120)));
  auto stats = stack.sim_stats();
  CHECK(stats.at("rate_limited").at("total").as_int64() == 0);
  CHECK(stats.at("max_parallel_seen").as_int64() <= 4);
  CHECK(stats.at("duplicate_charges").as_int64() == 0);
  const auto polls = stack.scalar("SELECT sum(polls) FROM klingq.jobs");
  CHECK(polls <= 24 * 4);
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE generation_ms IS NULL") == 0);
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT coalesce(sum(samples), 0) FROM klingq.generation_times") >= 20; },
                            std::chrono::seconds(30)));
  // The learned middle is within the simulator's spread (3..9 s real).
  const auto p50 = stack.scalar("SELECT p50_ms FROM klingq.generation_times WHERE mode = 'standard'");
  CHECK(p50 >= 3000);
  CHECK(p50 <= 9500);
}
