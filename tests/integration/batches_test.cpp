// Fair shares between batches on a real PostgreSQL (issue 17): klingq.batches and its
// migration from batch_budgets, the `klingq batch` commands, the claim transaction's
// choice of rows by share, and klingqd end to end against klingq-sim with one and with
// three instances.
#include "db/migrations.hpp"
#include "dispatcher/transactions.hpp"
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
using klingq::testing::Stack;
using namespace std::chrono_literals;
namespace dispatcher = klingq::dispatcher;

namespace {

struct Cli {
  int code;
  std::string out;
  std::string err;
  boost::json::value json() const {
    boost::json::error_code error;
    auto value = boost::json::parse(out, error);
    INFO("stdout: " << out << "\nstderr: " << err);
    REQUIRE_FALSE(error);
    return value;
  }
};

Cli klingq_cli(const std::string& url, std::vector<std::string> arguments) {
  arguments.insert(arguments.begin(), KLINGQ_CLI_BINARY);
  auto result = klingq::testing::run(arguments, {{"KLINGQ_DATABASE_URL", url}});
  return {result.exit_code, result.out, result.err};
}

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
    pqxx::work tx(c);
    tx.exec("CREATE SCHEMA klingq");
    tx.exec("CREATE TABLE klingq.schema_migrations (version int PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())");
    for (const auto& m : klingq::db::embedded_migrations()) {
      if (m.version >= 12) break;
      tx.exec(m.sql);
      tx.exec_params("INSERT INTO klingq.schema_migrations (version, name) VALUES ($1, $2)", m.version,
                     std::string(m.name));
    }
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

