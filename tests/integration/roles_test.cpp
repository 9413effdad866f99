// packaging/roles.sql on a throwaway cluster: klingqd, the klingq CLI and a dashboard
// user each log in as a role that holds only its klingq_* group role, and each does its
// whole job; the reader is refused what is not a view. A role without them is refused
// everything, which shows the grants (not some default) are what let the others in.
#include "support/stack.hpp"

#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace klingq::testing;
using namespace std::chrono_literals;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream file(path);
  REQUIRE_MESSAGE(file, "cannot read " << path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// The test database's URL with another user name (the cluster trusts local sockets).
std::string as_user(const std::string& url, const std::string& user) {
  auto at = url.find("postgres@");
  REQUIRE(at != std::string::npos);
  return url.substr(0, at) + user + url.substr(at + std::string("postgres").size());
}

CommandResult cli(const std::string& url, std::vector<std::string> arguments) {
  arguments.insert(arguments.begin(), KLINGQ_CLI_BINARY);
  auto result = run(arguments, {{"KLINGQ_DATABASE_URL", url}});
  INFO("klingq " << arguments[1] << ": " << result.out << result.err);
  CHECK(result.exit_code == 0);
  return result;
}

// True when `sql` is refused for lack of privilege.
bool denied(const std::string& url, const std::string& sql) {
  try {
    pqxx::connection connection(url);
    pqxx::work tx(connection);
    tx.exec(sql);
    return false;
  } catch (const pqxx::insufficient_privilege&) {
    return true;
  }
}

}  // namespace

TEST_CASE("roles: klingqd, the CLI and a dashboard reader work with only packaging/roles.sql's grants") {
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1", "--output-bytes", "2000"});
  {
    // As the schema's owner (here the superuser that migrated it), twice: it is re-runnable.
    pqxx::connection owner(stack.database);
    const auto roles = read_text(std::string(KLINGQ_SOURCE_DIR) + "/packaging/roles.sql");
    for (int i = 0; i < 2; ++i) {
      pqxx::work tx(owner);
      tx.exec(roles);
      tx.commit();
    }
    pqxx::work tx(owner);
    tx.exec("DO $$ BEGIN "
            "IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 't_klingqd') THEN "
            "  CREATE ROLE t_klingqd LOGIN IN ROLE klingq_daemon; "
            "  CREATE ROLE t_operator LOGIN IN ROLE klingq_operator; "
            "  CREATE ROLE t_grafana LOGIN IN ROLE klingq_reader; "
            "  CREATE ROLE t_nobody LOGIN; "
            "END IF; END $$");
    tx.commit();
  }
  const auto daemon_url = as_user(stack.database, "t_klingqd");
  const auto operator_url = as_user(stack.database, "t_operator");
  const auto reader_url = as_user(stack.database, "t_grafana");
  const auto nobody_url = as_user(stack.database, "t_nobody");
  CHECK(denied(nobody_url, "SELECT count(*) FROM klingq.jobs"));
  CHECK(denied(nobody_url, "SELECT * FROM klingq.queue_summary"));

  // The CLI loads a batch while dispatch is paused, cancels and retries it.
  cli(operator_url, {"pause", "--reason", "roles test"});
  const auto prompts = stack.dir + "/prompts.jsonl";
  {
    std::ofstream file(prompts);
    for (int i = 1; i <= 4; ++i) file << "{\"prompt\": \"role prompt " << i << "\", \"duration\": 5}\n";
  }
  cli(operator_url, {"submit", prompts, "--batch", "roles"});
  cli(operator_url, {"cancel", "--batch", "roles"});
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'cancelled'") == 4);
  cli(operator_url, {"retry", "--batch", "roles"});
  for (const char* command : {"status", "jobs", "limits", "estimate"}) cli(operator_url, {command});
  cli(operator_url, {"status", "--json"});

  // klingqd as its role: claims, submits, webhooks, polls, downloads, heartbeats.
  const auto videos = stack.dir + "/videos";
  auto& daemon = stack.start_daemon(stack.with_webhooks({{"database.url", "\"" + daemon_url + "\""},
                                                         {"limits.plan", "enterprise"},
                                                         {"outputs.download", "true"},
                                                         {"outputs.dir", "\"" + videos + "\""}}));
  cli(operator_url, {"resume"});
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed' AND output_path IS NOT NULL") == 4;
  }, 60s));
  CHECK(stack.scalar("SELECT count(*) FROM klingq.instances") >= 1);
  CHECK(daemon.stderr_text().find("permission denied") == std::string::npos);
  // The heartbeat's vacuums of klingq.batches and the summary tables need the owner: as
  // klingq_daemon they are skipped without a word (autovacuum does them instead).
  CHECK(daemon.stderr_text().find("vacuum") == std::string::npos);
  daemon.signal(SIGTERM);
  auto code = daemon.wait(15s);
  REQUIRE(code);
  CHECK(*code == 0);
  CHECK(daemon.stderr_text().find("permission denied") == std::string::npos);

  // The reader: every view, nothing else.
  {
    pqxx::connection reader(reader_url);
    pqxx::read_transaction tx(reader);
    for (const char* view : {"queue_summary", "throughput_per_minute", "latency_percentiles", "credit_spend",
                             "limit_state", "failures_by_class", "live_instances"}) {
      CAPTURE(view);
      CHECK_NOTHROW(tx.exec(std::string("SELECT * FROM klingq.") + view));
    }
  }
  CHECK(denied(reader_url, "SELECT prompt FROM klingq.jobs"));
  CHECK(denied(reader_url, "UPDATE klingq.account SET paused = true"));
  CHECK(denied(reader_url, "SELECT url FROM klingq.webhook_inbox"));
  // The CLI cannot change the schema or forge a migration; klingqd neither.
  CHECK(denied(operator_url, "INSERT INTO klingq.schema_migrations (version, name) VALUES (999, 'x')"));
  CHECK(denied(daemon_url, "DELETE FROM klingq.schema_migrations"));
  CHECK(denied(daemon_url, "DROP TABLE klingq.job_events"));
  CHECK(denied(operator_url, "DELETE FROM klingq.jobs"));
}
