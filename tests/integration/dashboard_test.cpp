// dashboards/klingq.json against a real database: every rawSql the dashboard holds runs
// on a migrated database with jobs in every state, events, an account row and
// instances, and returns rows. Also checks what the documented views say about that
// data, since they are an interface (schema/003_views.sql).
#include "support/pg_cluster.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

using klingq::testing::PgCluster;

namespace {

boost::json::value dashboard() {
  std::ifstream file(std::string(KLINGQ_SOURCE_DIR) + "/dashboards/klingq.json");
  std::stringstream text;
  text << file.rdbuf();
  return boost::json::parse(text.str());
}

// Every "rawSql" anywhere in the document (panels, nested rows, targets).
void collect_sql(const boost::json::value& value, std::vector<std::string>& out) {
  if (value.is_object()) {
    for (const auto& item : value.get_object()) {
      if (item.key() == "rawSql" && item.value().is_string()) {
        out.emplace_back(item.value().get_string());
      } else {
        collect_sql(item.value(), out);
      }
    }
  } else if (value.is_array()) {
    for (const auto& item : value.get_array()) collect_sql(item, out);
  }
}

// Grafana's macros, replaced by what they mean over an unbounded range.
std::string expand_macros(std::string sql) {
  sql = std::regex_replace(sql, std::regex(R"(\$__timeFilter\([^)]*\))"), "true");
  sql = std::regex_replace(sql, std::regex(R"(\$__timeFrom\(\))"), "'-infinity'::timestamptz");
  sql = std::regex_replace(sql, std::regex(R"(\$__timeTo\(\))"), "'infinity'::timestamptz");
  return sql;
}

// Data in every state, with the events the daemon's transitions leave behind.
void fill(pqxx::connection& connection) {
  pqxx::work tx(connection);
  tx.exec("INSERT INTO klingq.jobs (prompt, batch, mode, duration) "
          "SELECT 'job ' || g, CASE WHEN g % 2 = 0 THEN 'spring' END, "
          "CASE WHEN g % 3 = 0 THEN 'professional' ELSE 'standard' END, CASE WHEN g % 4 = 0 THEN 10 ELSE 5 END "
          "FROM generate_series(1, 60) g");
  // 10 stay queued; the others move through the daemon's states.
  tx.exec("UPDATE klingq.jobs SET state = 'dispatching', lease_owner = 'host-a', "
          "lease_expires_at = now() + interval '1 minute' WHERE id BETWEEN 11 AND 60");
  tx.exec("UPDATE klingq.jobs SET state = 'submitted', remote_id = 'r' || id, attempts = 1, "
          "credit_cost = CASE WHEN mode = 'professional' THEN 300 ELSE 100 END, "
          "submitted_at = now() WHERE id BETWEEN 21 AND 60");
  tx.exec("UPDATE klingq.jobs SET state = 'completed', completed_at = now(), url = 'https://cdn/' || id "
          "WHERE id BETWEEN 31 AND 50");
  tx.exec("UPDATE klingq.jobs SET state = 'failed', completed_at = now(), last_error = jsonb_build_object("
          "'last', jsonb_build_object('class', CASE WHEN id % 2 = 0 THEN 'remote_failed' ELSE 'invalid_job' END, "
          "'status', 400, 'code', 'BAD_USER_INPUT', 'message', 'bad ' || id, 'at', now(), 'attempt', 1), "
          "'history', '[]'::jsonb) WHERE id BETWEEN 51 AND 55");
  tx.exec("UPDATE klingq.jobs SET state = 'cancelled' WHERE id BETWEEN 56 AND 58");
  tx.exec("INSERT INTO klingq.account (name, rpm_limit, rpm_remaining, rpm_reset_at, day_limit, day_used, "
          "parallel_limit, limits_source, balance, balance_at, paused, paused_reason) VALUES "
          "('default', 60, 40, now() + interval '30 seconds', 10000, 40, 10, 'headers', 5000, now(), "
          "true, 'maintenance')");
  tx.exec("INSERT INTO klingq.instances (id, host, pid, version, heartbeat_at) VALUES "
          "('host-a-1', 'host-a', 1, '0.1.0', now()), ('host-b-2', 'host-b', 2, '0.1.0', now() - interval '5 minutes'), "
          "('host-c-3', 'host-c', 3, '0.1.0', now() - interval '2 hours')");
  tx.commit();
}

}  // namespace

TEST_CASE("every SQL query of the Grafana dashboard runs and returns rows") {
  auto document = dashboard();
  REQUIRE(document.is_object());
  std::vector<std::string> queries;
  collect_sql(document, queries);
  REQUIRE(queries.size() >= 10);

  pqxx::connection connection(PgCluster::shared().migrated_database());
  fill(connection);
  for (const auto& raw : queries) {
    auto sql = expand_macros(raw);
    CAPTURE(sql);
    CHECK(sql.find("$__") == std::string::npos);  // a macro this test does not know
    pqxx::read_transaction tx(connection);
    pqxx::result rows;
    CHECK_NOTHROW(rows = tx.exec(sql));
    CHECK(rows.size() >= 1);
  }
}

TEST_CASE("the dashboard's SQL panels read only the documented views") {
  const auto document = dashboard();
  std::vector<std::string> queries;
  collect_sql(document, queries);
  const std::regex relation(R"(klingq\.([a-z_]+))");
  const std::vector<std::string> views = {"queue_summary", "throughput_per_minute", "latency_percentiles",
                                          "credit_spend", "limit_state", "failures_by_class",
                                          "live_instances"};
  for (const auto& sql : queries) {
    CAPTURE(sql);
    for (std::sregex_iterator it(sql.begin(), sql.end(), relation), end; it != end; ++it) {
      CHECK(std::find(views.begin(), views.end(), (*it)[1].str()) != views.end());
    }
  }
  // The Prometheus panels stay few: the metrics belong to another part of klingq.
  int prometheus_targets = 0;
  for (const auto& panel : document.at("panels").as_array()) {
    if (panel.as_object().contains("targets")) {
      for (const auto& target : panel.at("targets").as_array()) {
        if (target.as_object().contains("expr")) ++prometheus_targets;
      }
    }
  }
  CHECK(prometheus_targets >= 1);
  CHECK(prometheus_targets <= 5);
}

TEST_CASE("the views report what the data says, and every view is documented") {
  pqxx::connection connection(PgCluster::shared().migrated_database());
  fill(connection);
  pqxx::read_transaction tx(connection);
  CHECK(tx.exec1("SELECT sum(jobs) FROM klingq.queue_summary WHERE state = 'queued'")[0].as<int>() == 10);
  CHECK(tx.exec1("SELECT jobs FROM klingq.queue_summary WHERE state = 'completed' AND batch = 'spring'")[0].as<int>() == 10);
  auto throughput = tx.exec1("SELECT count(*), sum(submitted), sum(completed), sum(failed) FROM klingq.throughput_per_minute");
  CHECK(throughput[0].as<int>() >= 1440);
  CHECK(throughput[1].as<int>() == 40);
  CHECK(throughput[2].as<int>() == 20);
  CHECK(throughput[3].as<int>() == 5);
  auto latency = tx.exec("SELECT period, stage, samples, p50_seconds IS NOT NULL FROM klingq.latency_percentiles ORDER BY 1, 2");
  REQUIRE(latency.size() == 4);
  for (const auto& row : latency) {
    CHECK(row[2].as<int>() > 0);
    CHECK(row[3].as<bool>());
  }
  CHECK(tx.exec1("SELECT samples FROM klingq.latency_percentiles WHERE period = '1 hour' AND stage = 'insert_to_submit'")[0].as<int>() == 40);
  // Charged: the 12 still submitted (21-30, 59-60) and the 20 completed (31-50).
  CHECK(tx.exec1("SELECT sum(jobs) FROM klingq.credit_spend")[0].as<int>() == 32);
  CHECK(tx.exec1("SELECT sum(credits) FROM klingq.credit_spend")[0].as<int>() ==
        tx.exec1("SELECT sum(credit_cost) FROM klingq.jobs WHERE state IN ('submitted', 'completed')")[0].as<int>());
  auto limits = tx.exec1("SELECT in_flight, paused, balance FROM klingq.limit_state");
  CHECK(limits[0].as<int>() == 10 + 12);  // dispatching 11-20, submitted 21-30 and 59-60
  CHECK(limits[1].as<bool>());
  CHECK(limits[2].as<int>() == 5000);
  auto failures = tx.exec("SELECT class, failures FROM klingq.failures_by_class ORDER BY class");
  REQUIRE(failures.size() == 2);
  CHECK(failures[0][0].as<std::string>() == "invalid_job");
  CHECK(failures[1][0].as<std::string>() == "remote_failed");
  CHECK(failures[0][1].as<int>() + failures[1][1].as<int>() == 5);
  auto instances = tx.exec("SELECT id, live FROM klingq.live_instances ORDER BY id");
  REQUIRE(instances.size() == 2);  // the one silent for 2 hours is gone
  CHECK(instances[0][1].as<bool>());
  CHECK_FALSE(instances[1][1].as<bool>());
  CHECK(tx.exec1("SELECT count(*) FROM pg_views v JOIN pg_class c ON c.relname = v.viewname "
                 "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = v.schemaname "
                 "WHERE v.schemaname = 'klingq' AND obj_description(c.oid, 'pg_class') IS NOT NULL")[0]
            .as<int>() == 9);  // 003's seven, batch_submit_share and batch_budgets (012)
  CHECK(tx.exec1("SELECT count(*) FROM pg_views WHERE schemaname = 'klingq'")[0].as<int>() == 9);
}
