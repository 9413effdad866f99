// Fair shares between batches on a real PostgreSQL (issue 17): klingq.batches and its
// migration from batch_budgets, the `klingq batch` commands, the claim transaction's
// choice of rows by share, and klingqd end to end against klingq-sim with one and with
// three instances.
#include "db/migrations.hpp"
#include "dispatcher/transactions.hpp"
#include "shares/shares.hpp"
#include "support/cli.hpp"
#include "support/old_schema.hpp"
#include "support/pg_cluster.hpp"
#include "support/process.hpp"
#include "support/stack.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

using klingq::testing::PgCluster;
using klingq::testing::migrate_before;
using klingq::testing::Cli;
using klingq::testing::klingq_cli;
using klingq::testing::Stack;
using namespace std::chrono_literals;
namespace dispatcher = klingq::dispatcher;

namespace {

long long scalar(pqxx::connection& c, const std::string& sql) {
  pqxx::read_transaction tx(c);
  return tx.exec1(sql)[0].as<long long>();
}
void exec(pqxx::connection& c, const std::string& sql) {
  pqxx::work tx(c);
  tx.exec(sql);
  tx.commit();
}

dispatcher::QueueSettings unlimited(const std::string& instance) {
  dispatcher::QueueSettings s;
  s.instance = instance;
  s.plan = {0, 0, 0};  // no account limits: the claim's `wanted` is the allowance
  return s;
}

// Claims `wanted` rows and returns the batch label of each ("-" for unlabelled).
std::vector<std::string> claim_batches(pqxx::connection& c, const dispatcher::QueueSettings& settings,
                                       std::int64_t wanted) {
  auto result = dispatcher::claim(c, settings, wanted, false);
  std::vector<std::string> out;
  for (const auto& job : result.jobs) {
    pqxx::read_transaction tx(c);
    auto row = tx.exec_params1("SELECT coalesce(batch, '-') FROM klingq.jobs WHERE id = $1", job.id);
    out.push_back(row[0].as<std::string>());
  }
  return out;
}

void set_balance(pqxx::connection& c, long long credits) {
  exec(c, "UPDATE klingq.account SET balance = " + std::to_string(credits) + ", balance_at = now()");
}

}  // namespace

TEST_CASE("migration 012 folds batch_budgets into klingq.batches and keeps every budget") {
  auto url = PgCluster::shared().fresh_database();
  pqxx::connection c(url);
  {
    // The schema as version 11 left it, with budgets and queued jobs in it.
    migrate_before(c, 12);
    pqxx::work tx(c);
    tx.exec("INSERT INTO klingq.batch_budgets (batch, budget) VALUES ('spring', 5000), ('idle', 0)");
    tx.exec("INSERT INTO klingq.jobs (prompt, batch) VALUES ('a', 'spring'), ('b', 'summer'), ('c', NULL)");
    tx.exec("INSERT INTO klingq.jobs (prompt, batch, state) VALUES ('d', 'done', 'cancelled')");
    tx.commit();
  }
  auto applied = klingq::db::migrate(c);
  REQUIRE_FALSE(applied.empty());
  CHECK(applied.front() == 12);
  pqxx::read_transaction tx(c);
  std::map<std::string, std::string> rows;
  for (const auto& r : tx.exec("SELECT coalesce(batch, '(null)'), coalesce(budget::text, '-'), active, weight "
                               "FROM klingq.batches ORDER BY key")) {
    rows[r[0].c_str()] = std::string(r[1].c_str()) + (r[2].as<bool>() ? " active" : " idle") + " w" + r[3].c_str();
  }
  CHECK(rows == std::map<std::string, std::string>{{"(null)", "- active w1"},
                                                   {"idle", "0 idle w1"},
                                                   {"spring", "5000 active w1"},
                                                   {"summer", "- active w1"}});
  // The old table's name still reads the budgets.
  CHECK(tx.exec1("SELECT string_agg(batch || '=' || budget, ',' ORDER BY batch) FROM klingq.batch_budgets")[0]
            .as<std::string>() == "idle=0,spring=5000");
}

TEST_CASE("the batch_budgets view still sets, changes and clears budgets") {
  pqxx::connection c(PgCluster::shared().migrated_database());
  exec(c, "INSERT INTO klingq.batch_budgets (batch, budget) VALUES ('capped', 250)");
  CHECK(scalar(c, "SELECT budget FROM klingq.batches WHERE batch = 'capped'") == 250);
  exec(c, "UPDATE klingq.batch_budgets SET budget = 1000");
  CHECK(scalar(c, "SELECT budget FROM klingq.batches WHERE batch = 'capped'") == 1000);
  exec(c, "INSERT INTO klingq.batch_budgets (batch, budget) VALUES ('capped', 30)");  // an upsert now
  CHECK(scalar(c, "SELECT budget FROM klingq.batches WHERE batch = 'capped'") == 30);
  exec(c, "DELETE FROM klingq.batch_budgets WHERE batch = 'capped'");
  CHECK(scalar(c, "SELECT count(*) FROM klingq.batches WHERE batch = 'capped' AND budget IS NULL") == 1);
  CHECK_THROWS_AS(exec(c, "INSERT INTO klingq.batch_budgets (batch, budget) VALUES ('x', -1)"), pqxx::sql_error);
}

TEST_CASE("klingq batch set, pause, resume and list, with --json and clear errors") {
  auto url = PgCluster::shared().migrated_database();
  pqxx::connection c(url);
  auto set = klingq_cli(url, {"batch", "set", "spring", "--weight", "3", "--max-parallel", "2", "--budget", "50000",
                              "--daily-cap", "400", "--json"});
  REQUIRE(set.code == 0);
  auto json = set.json().as_object();
  CHECK(json.at("batch").as_string() == "spring");
  CHECK(json.at("weight").as_int64() == 3);
  CHECK(json.at("max_parallel").as_int64() == 2);
  CHECK(json.at("daily_cap").as_int64() == 400);
  CHECK(json.at("budget").as_int64() == 50000);
  // Settings not given are kept; `none` clears one.
  auto changed = klingq_cli(url, {"batch", "set", "spring", "--max-parallel", "none", "--json"});
  REQUIRE(changed.code == 0);
  CHECK(changed.json().at("weight").as_int64() == 3);
  CHECK(changed.json().at("max_parallel").is_null());
  CHECK(changed.json().at("budget").as_int64() == 50000);
  CHECK(klingq_cli(url, {"batch", "set", "--unlabelled", "--weight", "2"}).code == 0);
  CHECK(scalar(c, "SELECT weight FROM klingq.batches WHERE batch IS NULL") == 2);

  CHECK(klingq_cli(url, {"batch", "pause", "spring", "--reason", "review 🧾"}).code == 0);
  CHECK(scalar(c, "SELECT count(*) FROM klingq.batches WHERE batch = 'spring' AND paused AND paused_reason = 'review 🧾'") == 1);
  exec(c, "INSERT INTO klingq.jobs (prompt, batch) SELECT 'p' || g, 'spring' FROM generate_series(1, 3) g");
  auto list = klingq_cli(url, {"batch", "list", "--json"});
  REQUIRE(list.code == 0);
  auto batches = list.json().at("batches").as_array();
  REQUIRE(batches.size() == 2);
  CHECK(batches[0].at("batch").is_null());
  CHECK(batches[0].at("weight").as_int64() == 2);
  CHECK(batches[1].at("batch").as_string() == "spring");
  CHECK(batches[1].at("paused").as_bool());
  CHECK(batches[1].at("paused_reason").as_string() == "review 🧾");
  CHECK(batches[1].at("queued").as_int64() == 3);
  auto text = klingq_cli(url, {"batch", "list"});
  CHECK(text.code == 0);
  CHECK(text.out.find("(unlabelled)") != std::string::npos);
  CHECK(text.out.find("review 🧾") != std::string::npos);
  CHECK(klingq_cli(url, {"batch", "resume", "spring"}).code == 0);
  CHECK(scalar(c, "SELECT count(*) FROM klingq.batches WHERE batch = 'spring' AND NOT paused") == 1);

  // Usage errors name the problem and exit 2; the table's own checks exit 1.
  auto bad_weight = klingq_cli(url, {"batch", "set", "spring", "--weight", "0"});
  CHECK(bad_weight.code == 2);
  CHECK(bad_weight.err.find("--weight") != std::string::npos);
  CHECK(klingq_cli(url, {"batch", "set", "spring", "--max-parallel", "lots"}).code == 2);
  CHECK(klingq_cli(url, {"batch", "set"}).code == 2);
  CHECK(klingq_cli(url, {"batch", "frobnicate", "x"}).code == 2);
  CHECK(klingq_cli(url, {"batch"}).code == 2);
  CHECK(klingq_cli(url, {"batch", "set", "--unlabelled", "--budget", "5"}).code == 2);
  auto too_long = klingq_cli(url, {"batch", "set", std::string(201, 'x'), "--weight", "2"});
  CHECK(too_long.code == 1);
  CHECK(too_long.err.find("batches_batch_length") != std::string::npos);
  auto help = klingq_cli(url, {"batch", "--help"});
  CHECK(help.code == 0);
  CHECK(help.out.find("usage: klingq batch") != std::string::npos);
}

TEST_CASE("the claim splits submits between batches by weight, and a late batch goes next") {
  pqxx::connection c(PgCluster::shared().migrated_database());
  auto settings = unlimited("host-a");
  dispatcher::ensure_account(c, settings);
  set_balance(c, 100000000);
  exec(c, "INSERT INTO klingq.jobs (prompt, batch) SELECT 'large ' || g, 'large' FROM generate_series(1, 200) g");
  CHECK(claim_batches(c, settings, 10) == std::vector<std::string>(10, "large"));
  // A small batch inserted later at equal weight: the next claim starts with it and the
  // two alternate.
  exec(c, "INSERT INTO klingq.jobs (prompt, batch) SELECT 'small ' || g, 'small' FROM generate_series(1, 5) g");
  auto next = claim_batches(c, settings, 1);
  CHECK(next == std::vector<std::string>{"small"});
  auto both = claim_batches(c, settings, 8);
  CHECK(std::count(both.begin(), both.end(), "small") == 4);
  CHECK(std::count(both.begin(), both.end(), "large") == 4);
  // The small batch is done: the large one has it all again, and the small one left the walk.
  CHECK(claim_batches(c, settings, 4) == std::vector<std::string>(4, "large"));
  // The once-a-second sweep (with the lease reaper) takes the empty batch out of the walk.
  CHECK(dispatcher::claim(c, settings, 1, true).jobs.size() == 1);
  CHECK(scalar(c, "SELECT count(*) FROM klingq.batches WHERE batch = 'small' AND NOT active") == 1);

  SUBCASE("weights 3:1, across claims of one") {
    exec(c, "UPDATE klingq.batches SET weight = 3 WHERE batch = 'large'");
    exec(c, "INSERT INTO klingq.jobs (prompt) SELECT 'unlabelled ' || g FROM generate_series(1, 100) g");
    std::map<std::string, int> got;
    for (int i = 0; i < 40; ++i) {
      for (auto& b : claim_batches(c, settings, 1)) ++got[b];
    }
    // 3:1 within a submit (the weight changed mid-way: the next stride is the new one).
    CHECK(got["large"] >= 29);
    CHECK(got["large"] <= 31);
    CHECK(got["large"] + got["-"] == 40);
  }
  SUBCASE("a paused batch gives its share away; resumed, it takes it back without a burst") {
    exec(c, "INSERT INTO klingq.jobs (prompt, batch) SELECT 'b ' || g, 'b' FROM generate_series(1, 100) g");
    exec(c, "UPDATE klingq.batches SET paused = true WHERE batch = 'b'");
    CHECK(claim_batches(c, settings, 6) == std::vector<std::string>(6, "large"));
    exec(c, "UPDATE klingq.batches SET paused = false WHERE batch = 'b'");
    auto after = claim_batches(c, settings, 10);
    // Half, within one submit (it comes back at the current virtual time: a tie with the
    // large batch goes to the lower key).
    const auto b = std::count(after.begin(), after.end(), "b");
    CHECK(b >= 5);
    CHECK(b <= 6);
  }
  SUBCASE("max_parallel and budget: a capped batch leaves its submits to the others") {
    exec(c, "INSERT INTO klingq.jobs (prompt, batch) SELECT 'b ' || g, 'b' FROM generate_series(1, 100) g");
    exec(c, "UPDATE klingq.batches SET max_parallel = 2 WHERE batch = 'b'");
    auto got = claim_batches(c, settings, 10);
    CHECK(std::count(got.begin(), got.end(), "b") == 2);
    CHECK(got.size() == 10);
    exec(c, "UPDATE klingq.batches SET max_parallel = NULL, budget = 300 WHERE batch = 'b'");
    auto more = claim_batches(c, settings, 20);
    CHECK(more.size() == 20);
    // 300 credits at 100 a job: one more (two are dispatching: 200 committed).
    CHECK(std::count(more.begin(), more.end(), "b") == 1);
    // The spent batch's jobs say why they wait (checked with the once-a-second sweep).
    CHECK(dispatcher::claim(c, settings, 1, true).jobs.size() == 1);
    CHECK(scalar(c, "SELECT count(*) FROM klingq.jobs WHERE batch = 'b' AND state = 'queued' "
                    "AND wait_reason LIKE 'batch budget spent%'") == 97);
  }
  SUBCASE("a higher priority goes first, whatever the shares") {
    exec(c, "INSERT INTO klingq.jobs (prompt, batch, priority) SELECT 'u ' || g, 'urgent', 5 FROM generate_series(1, 3) g");
    CHECK(claim_batches(c, settings, 3) == std::vector<std::string>(3, "urgent"));
  }
}

TEST_CASE("a claim over many batches serves a few at a time, and over the claims every batch the same") {
  pqxx::connection c(PgCluster::shared().migrated_database());
  auto settings = unlimited("host-a");
  dispatcher::ensure_account(c, settings);
  set_balance(c, 100000000);
  exec(c, "INSERT INTO klingq.jobs (prompt, batch) SELECT 'm ' || g, 'm' || lpad((g % 40)::text, 2, '0') "
          "FROM generate_series(1, 1200) g");
  auto first = claim_batches(c, settings, 40);
  REQUIRE(first.size() == 40);
  std::map<std::string, int> per;
  for (auto& b : first) ++per[b];
  CHECK(per.size() == klingq::shares::max_served);
  for (auto& [batch, n] : per) CHECK(n == 5);
  // Three rounds through the 40 batches: each within a claim's part (5) of its 15.
  std::map<std::string, int> got = per;
  for (int i = 0; i < 14; ++i) {
    for (auto& b : claim_batches(c, settings, 40)) ++got[b];
  }
  CHECK(got.size() == 40);
  for (auto& [batch, n] : got) {
    CHECK(n >= 10);
    CHECK(n <= 20);
  }
  // A batch of two, inserted now, is counted to the row: the next claim takes both and
  // it leaves the walk at once, without waiting for the once-a-second sweep.
  exec(c, "INSERT INTO klingq.jobs (prompt, batch) VALUES ('t 1', 'tiny'), ('t 2', 'tiny')");
  auto next = claim_batches(c, settings, 40);
  CHECK(std::count(next.begin(), next.end(), "tiny") == 2);
  CHECK(next.size() == 40);
  CHECK(scalar(c, "SELECT count(*) FROM klingq.batches WHERE batch = 'tiny' AND NOT active") == 1);
}

TEST_CASE("three claimers share the state: the shares hold across instances") {
  auto url = PgCluster::shared().migrated_database();
  pqxx::connection a(url), b(url), c(url);
  dispatcher::ensure_account(a, unlimited("a"));
  set_balance(a, 100000000);
  exec(a, "INSERT INTO klingq.jobs (prompt, batch) SELECT 'x ' || g, 'x' FROM generate_series(1, 300) g");
  exec(a, "INSERT INTO klingq.jobs (prompt, batch) SELECT 'y ' || g, 'y' FROM generate_series(1, 300) g");
  exec(a, "UPDATE klingq.batches SET weight = 3 WHERE batch = 'x'");
  std::map<std::string, int> got;
  pqxx::connection* connections[] = {&a, &b, &c};
  const char* names[] = {"a", "b", "c"};
  for (int i = 0; i < 120; ++i) {
    for (auto& batch : claim_batches(*connections[i % 3], unlimited(names[i % 3]), 1)) ++got[batch];
  }
  CHECK(got["x"] == 90);
  CHECK(got["y"] == 30);
}

namespace {
// Submits per batch in order of submission (job_events), for the end-to-end runs.
std::vector<std::string> submit_order(Stack& stack) {
  std::vector<std::string> out;
  pqxx::connection c(stack.database);
  pqxx::read_transaction tx(c);
  for (const auto& r : tx.exec("SELECT j.batch FROM klingq.job_events e JOIN klingq.jobs j ON j.id = e.job_id "
                               "WHERE e.to_state = 'submitted' ORDER BY e.at, e.id")) {
    out.push_back(r[0].c_str());
  }
  return out;
}

// A large batch first, a small one inserted once the large one is flowing, request-bound:
// while both have jobs the small one takes about every other submit.
void check_late_small_batch(Stack& stack) {
  stack.insert_jobs(300, "batch", "'large'");
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state <> 'queued'") >= 20; }, 60s));
  stack.insert_jobs(20, "batch", "'small'");
  REQUIRE(Stack::wait_until(
      [&] { return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE batch = 'small' AND state = 'queued'") == 0; },
      60s));
  REQUIRE(Stack::wait_until(
      [&] { return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE batch = 'small' AND submitted_at IS NULL") == 0; },
      60s));
  auto order = submit_order(stack);
  auto first = std::find(order.begin(), order.end(), "small");
  auto last = std::find(order.rbegin(), order.rend(), "small").base();
  REQUIRE(first != order.end());
  const auto both = std::distance(first, last);
  const auto small = std::count(first, last, std::string("small"));
  INFO("submits while both ran: " << both << ", of the small batch: " << small);
  CHECK(small == 20);
  // Equal weights: about half (a claim of several submits may put two of one in a row).
  CHECK(static_cast<double>(small) / static_cast<double>(both) >= 0.4);
}
}  // namespace

TEST_CASE("klingqd: a small batch behind a large one gets half the submits at once (one instance)") {
  Stack stack({"--plan", "enterprise", "--rpm", "60", "--parallel", "0", "--daily", "0", "--time-scale", "60",
               "--gen-seconds", "1:1"});
  stack.start_daemon(stack.with_webhooks({{"limits.plan", "enterprise"}}));
  check_late_small_batch(stack);
  CHECK(stack.sim_stats().at("rate_limited").at("total").to_number<long long>() == 0);
}

TEST_CASE("klingqd: three instances keep the shares between batches together") {
  Stack stack({"--plan", "enterprise", "--rpm", "60", "--parallel", "0", "--daily", "0", "--time-scale", "60",
               "--gen-seconds", "1:1"});
  for (int i = 0; i < 3; ++i) {
    stack.start_daemon(stack.with_webhooks(
        {{"limits.plan", "enterprise"}, {"dispatch.instance_id", "\"instance-" + std::to_string(i) + "\""}}));
  }
  check_late_small_batch(stack);
  CHECK(stack.scalar("SELECT count(DISTINCT lease_owner) FROM klingq.jobs WHERE batch = 'small'") >= 2);
  CHECK(stack.sim_stats().at("rate_limited").at("total").to_number<long long>() == 0);
}
