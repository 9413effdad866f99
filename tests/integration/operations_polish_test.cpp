// Issue 18 as an operator meets it, against the real binaries: errors as JSON, the
// database named and redacted, CLI details, over-long and quoted-number input lines,
// why queued jobs wait, SIGHUP naming what needs a restart, the API key gone from
// /proc/<pid>/environ, a 401 from a balance query, quieter logs, a database-wide
// gauge published once across two instances, and accept() out of descriptors.
#include "dispatcher/transactions.hpp"
#include "support/cli.hpp"
#include "support/http_call.hpp"
#include "support/pg_cluster.hpp"
#include "support/stack.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace klingq::testing;
using namespace std::chrono_literals;

namespace {

CommandResult cli(std::vector<std::string> arguments, std::map<std::string, std::string> env = {}) {
  arguments.insert(arguments.begin(), KLINGQ_CLI_BINARY);
  return run(arguments, std::move(env));
}

boost::json::object json_of(const CommandResult& result) {
  INFO("stdout: " << result.out << "\nstderr: " << result.err);
  boost::json::error_code error;
  auto value = boost::json::parse(result.out, error);
  REQUIRE_FALSE(error);
  REQUIRE(value.is_object());
  return value.as_object();
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("cli: --json turns every error into one document with the exit code") {
  auto& cluster = PgCluster::shared();
  Scratch scratch;
  const std::string unreachable = "postgresql://postgres@/nope?host=" + scratch.dir.string();
  auto down = cli({"--database", unreachable, "--json", "status"});
  CHECK(down.exit_code == 3);
  auto down_json = json_of(down);
  CHECK(down_json.at("exit_code").as_int64() == 3);
  CHECK(down_json.at("error").as_string().find("cannot reach the database") != std::string::npos);
  // libpq's own reason is in it, as on stderr.
  CHECK(down_json.at("error").as_string().find("No such file or directory") != std::string::npos);

  auto unmigrated = cli({"--database", cluster.fresh_database(), "status", "--json"});
  CHECK(unmigrated.exit_code == 1);
  CHECK(json_of(unmigrated).at("exit_code").as_int64() == 1);

  const std::string url = cluster.migrated_database();
  auto missing = cli({"--database", url, "--json", "submit", (scratch.dir / "absent.csv").string()});
  CHECK(missing.exit_code == 1);
  auto missing_json = json_of(missing);
  CHECK(missing_json.at("error").as_string().find("cannot open") != std::string::npos);
  CHECK(missing_json.at("exit_code").as_int64() == 1);

  auto usage = cli({"--database", url, "status", "--bogus", "--json"});
  CHECK(usage.exit_code == 2);
  CHECK(json_of(usage).at("exit_code").as_int64() == 2);
  // The command's own usage, not the whole global help.
  CHECK(usage.err.find("usage: klingq status") != std::string::npos);
  CHECK(usage.err.find("commands:") == std::string::npos);

  auto bad_config = cli({"--config", (scratch.dir / "none.yaml").string(), "--json", "status"});
  CHECK(bad_config.exit_code == 2);
  CHECK(json_of(bad_config).at("exit_code").as_int64() == 2);
}

TEST_CASE("cli: a malformed --database is a usage error, PG* variables are a database, passwords never print") {
  auto& cluster = PgCluster::shared();
  auto bad = cli({"--database", "notaurl", "status"});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("not a libpq connection string") != std::string::npos);

  // libpq's environment alone names a database.
  const std::string url = cluster.migrated_database();
  const std::string name = url.substr(url.find("@/") + 2, url.find('?') - url.find("@/") - 2);
  auto from_env = cli({"status", "--json"}, {{"PGHOST", cluster.socket_dir()},
                                             {"PGPORT", std::to_string(cluster.port())},
                                             {"PGUSER", "postgres"},
                                             {"PGDATABASE", name}});
  CHECK(from_env.exit_code == 0);
  CHECK(json_of(from_env).at("total").as_int64() == 0);

  // A backslash-escaped space inside the password: neither half may print.
  Scratch scratch;
  const std::string key_value = "host=" + scratch.dir.string() + R"( password=canaryA\ canaryB dbname=x)";
  auto unreachable = cli({"--database", key_value, "status"});
  CHECK(unreachable.exit_code == 3);
  CHECK(unreachable.err.find("canaryA") == std::string::npos);
  CHECK(unreachable.err.find("canaryB") == std::string::npos);
  CHECK(unreachable.err.find("password=<redacted>") != std::string::npos);
}

TEST_CASE("cli: cancel with both IDs and --batch says so - estimate exits 1 while short of credits") {
  const std::string url = PgCluster::shared().migrated_database();
  auto both = cli({"--database", url, "cancel", "2", "--batch", "x"});
  CHECK(both.exit_code == 2);
  CHECK(both.err.find("not both") != std::string::npos);
  auto retry_both = cli({"--database", url, "retry", "2", "--failed"});
  CHECK(retry_both.exit_code == 2);
  CHECK(retry_both.err.find("not both") != std::string::npos);

  Scratch scratch;
  auto load = cli({"--database", url, "submit", scratch.file("p.jsonl", "{\"prompt\": \"a\", \"duration\": 10}\n")});
  REQUIRE(load.exit_code == 0);
  CHECK(cli({"--database", url, "estimate"}).exit_code == 0);  // balance unknown: nothing to say
  pqxx::connection connection(url);
  {
    pqxx::work tx(connection);
    tx.exec("INSERT INTO klingq.account (name, balance, balance_at) VALUES ('default', 150, now())");
    tx.commit();
  }
  auto short_of = cli({"--database", url, "estimate"});
  CHECK(short_of.exit_code == 1);
  CHECK(short_of.out.find("short by 50 credits") != std::string::npos);
  {
    pqxx::work tx(connection);
    tx.exec("UPDATE klingq.account SET balance = 1000");
    tx.commit();
  }
  CHECK(cli({"--database", url, "estimate"}).exit_code == 0);
}

TEST_CASE("submit: a line over the size limit is one bad line, named with the file") {
  const std::string url = PgCluster::shared().migrated_database();
  Scratch scratch;
  const auto path = (scratch.dir / "long.jsonl").string();
  {
    std::ofstream out(path, std::ios::binary);
    out << R"({"prompt": "before"})" << "\n{\"prompt\": \"";
    const std::string chunk(1 << 20, 'x');
    for (int i = 0; i < 65; ++i) out << chunk;  // 65 MiB: over the 64 MiB limit
    out << "\"}\n" << R"({"prompt": "after"})" << "\n";
  }
  auto abort = cli({"--database", url, "submit", path, "--on-error", "abort"});
  CHECK(abort.exit_code == 4);
  auto skip = cli({"--database", url, "submit", path, "--on-error", "skip"});
  CHECK(skip.exit_code == 1);
  CHECK(skip.err.find(path + ": line 2: line is longer than 64 MiB") != std::string::npos);
  pqxx::connection connection(url);
  pqxx::read_transaction tx(connection);
  CHECK(tx.exec1("SELECT string_agg(prompt, ',' ORDER BY id) FROM klingq.jobs")[0].as<std::string>() ==
        "before,after");
}

TEST_CASE("submit: JSON lines refuse a quoted duration and a repeated key like the CSV path refuses bad cells") {
  const std::string url = PgCluster::shared().migrated_database();
  Scratch scratch;
  auto path = scratch.file("q.jsonl", "{\"prompt\": \"a\", \"duration\": \"5\"}\n"
                                      "{\"prompt\": \"b\", \"prompt\": \"c\"}\n"
                                      "{\"prompt\": \"d\", \"duration\": 5}\n");
  auto result = cli({"--database", url, "submit", path});
  CHECK(result.exit_code == 1);
  CHECK(result.err.find("line 1: duration must be a JSON number") != std::string::npos);
  CHECK(result.err.find("line 2: key \"prompt\" appears twice") != std::string::npos);
  CHECK(result.out.find("loaded 1 job") != std::string::npos);
}

TEST_CASE("operations: with no credit, queued jobs say why they wait and klingq status says why nothing moves") {
  Stack stack({"--plan", "starter", "--time-scale", "60", "--gen-seconds", "1:1", "--credits", "0"});
  stack.insert_jobs(3);
  stack.start_daemon({{"limits.plan", "starter"}});
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE wait_reason LIKE 'waiting for credit%'") == 3;
  }, 20s));
  auto status = cli({"--database", stack.database, "status"});
  CHECK(status.exit_code == 0);
  CHECK(status.out.find("dispatch held: no credit: balance 0") != std::string::npos);
  CHECK(status.out.find("waiting: 3 queued jobs: waiting for credit") != std::string::npos);
  auto json = json_of(cli({"--database", stack.database, "status", "--json"}));
  CHECK(json.at("waiting").as_array().at(0).as_object().at("jobs").as_int64() == 3);
  CHECK(json.at("held_by").as_array().size() == 1);
  // A top-up: the jobs run, and the claim clears the reason.
  stack.sim_config({{"credits", 10000}});
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 3;
  }, 30s));
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE wait_reason IS NOT NULL") == 0);
}

TEST_CASE("operations: SIGHUP names each changed key it cannot apply, and says reloaded only when it applied all") {
  Stack stack({"--plan", "free", "--time-scale", "60", "--gen-seconds", "1:1"});
  const int http_port = free_port();
  auto overrides = std::map<std::string, std::string>{{"http.listen", "\"127.0.0.1:" + std::to_string(http_port) + "\""}};
  auto& daemon = stack.start_daemon(overrides);
  const auto path = stack.last_config_path;

  // Only a reloadable key changed: config_reloaded.
  overrides["log.level"] = "info";
  std::filesystem::rename(stack.write_config(overrides), path);
  daemon.signal(SIGHUP);
  REQUIRE(Stack::wait_until([&] { return daemon.stderr_text().find("config_reloaded path=") != std::string::npos; }, 10s));
  CHECK(daemon.stderr_text().find("config_change_needs_restart") == std::string::npos);

  // http.listen and database.pool_size changed: named, kept, and no config_reloaded.
  const auto before = count_of(daemon.stderr_text(), "config_reloaded path=");
  overrides["http.listen"] = "\"127.0.0.1:" + std::to_string(free_port()) + "\"";
  overrides["database.pool_size"] = "2";
  std::filesystem::rename(stack.write_config(overrides), path);
  daemon.signal(SIGHUP);
  REQUIRE(Stack::wait_until([&] { return daemon.stderr_text().find("config_reloaded_partly") != std::string::npos; }, 10s));
  const auto& log = daemon.stderr_text();
  CHECK(log.find("<4>config_change_needs_restart key=http.listen") != std::string::npos);
  CHECK(log.find("<4>config_change_needs_restart key=database.pool_size") != std::string::npos);
  CHECK(log.find("needs_restart=database.pool_size,http.listen") != std::string::npos);
  CHECK(count_of(log, "config_reloaded path=") == before);
  // Still serving on the port it bound at start.
  CHECK(http_call("127.0.0.1:" + std::to_string(http_port), "GET", "/healthz").status == 200);
}

TEST_CASE("operations: klingqd says why the database is unreachable, without the password") {
  Stack stack({"--plan", "free"});
  Scratch scratch;
  auto path = stack.write_config(
      {{"database.url", "\"host=" + scratch.dir.string() + R"( password=canaryA\\ canaryB dbname=x")"}});
  auto result = run({KLINGQD_BINARY, "--config", path}, {{"KLINGQ_API_KEY", sim_api_key}}, 30s);
  CHECK(result.exit_code == 3);
  CHECK(result.err.find("database_unreachable") != std::string::npos);
  CHECK(result.err.find("reason=") != std::string::npos);
  CHECK(result.err.find("No such file or directory") != std::string::npos);
  CHECK(result.err.find("canaryA") == std::string::npos);
  CHECK(result.err.find("canaryB") == std::string::npos);
}

TEST_CASE("operations: $KLINGQ_API_KEY is gone from /proc/<pid>/environ once read, and SIGHUP keeps it") {
  const std::string canary = "CANARY-environ-key-51c2";
  Stack stack({"--plan", "free", "--time-scale", "60", "--gen-seconds", "1:1", "--api-key", canary});
  auto& daemon = stack.start_daemon({}, {{"KLINGQ_API_KEY", canary}});
  std::ifstream environ_file("/proc/" + std::to_string(daemon.pid()) + "/environ", std::ios::binary);
  std::stringstream environ_text;
  environ_text << environ_file.rdbuf();
  // The name stays (its value's bytes are zeroed): this is the right environment.
  CHECK(environ_text.str().find("KLINGQ_API_KEY=") != std::string::npos);
  CHECK(environ_text.str().find(canary) == std::string::npos);
  daemon.signal(SIGHUP);
  REQUIRE(Stack::wait_until([&] { return daemon.stderr_text().find("config_reloaded") != std::string::npos; }, 10s));
  stack.insert_jobs(2);
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 2;
  }, 30s));
}

TEST_CASE("operations: a 401 on the balance query logs an error and sets klingq_halted at once") {
  Stack stack({"--plan", "free", "--time-scale", "60", "--api-key", "the-right-key"});
  const int http_port = free_port();
  const std::string ops = "127.0.0.1:" + std::to_string(http_port);
  // No jobs: the only request klingqd makes is the balance query.
  auto& daemon = stack.start_daemon({{"http.listen", "\"" + ops + "\""}, {"credits.refresh_seconds", "300"}},
                                    {{"KLINGQ_API_KEY", "a-wrong-key"}});
  REQUIRE(Stack::wait_until([&] {
    return daemon.stderr_text().find("<3>api_key_refused request=balance") != std::string::npos;
  }, 15s));
  CHECK(http_call(ops, "GET", "/metrics").body.find("\nklingq_halted 1") != std::string::npos);
  CHECK(http_call(ops, "GET", "/readyz").status == 503);
}

TEST_CASE("operations: logs say what changed once, each job at info, and JSON lines carry time and numbers") {
  Stack stack({"--plan", "free", "--time-scale", "60", "--gen-seconds", "1:1"});
  stack.insert_jobs(8);
  auto& daemon = stack.start_daemon(stack.with_webhooks({{"log.level", "info"}, {"log.json", "true"}}));
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 8;
  }, 40s));
  daemon.signal(SIGTERM);
  REQUIRE(daemon.wait(15s));
  std::istringstream lines(daemon.stderr_text());
  int submitted = 0, completed = 0, held = 0;
  for (std::string line; std::getline(lines, line);) {
    boost::json::error_code error;
    auto value = boost::json::parse(line, error);
    REQUIRE_MESSAGE(!error, line);
    const auto& object = value.as_object();
    CHECK(object.at("ts").as_string().size() == 24);  // 2026-01-01T00:00:00.000Z
    const auto event = std::string(object.at("event").as_string());
    if (event == "job_submitted") {
      ++submitted;
      CHECK(object.at("job").is_int64());
      CHECK(object.at("credits").as_int64() == 100);
      CHECK(object.at("remote_id").is_string());
    }
    if (event == "job_completed") ++completed;
    if (event == "dispatch_held") ++held;
  }
  CHECK(submitted == 8);
  CHECK(completed == 8);
  // One job at a time for 8 jobs: the hold flickers with every completion (parallel,
  // rpm), the log does not: at most one line per kind of hold.
  MESSAGE("dispatch_held lines: " << held);
  CHECK(held <= 3);
}

TEST_CASE("operations: two instances - the database-wide gauges come from one, so a sum counts each job once") {
  Stack stack({"--plan", "starter", "--time-scale", "60", "--gen-seconds", "1:1"});
  stack.insert_jobs(5);
  stack.exec("UPDATE klingq.jobs SET run_after = now() + interval '1 day'");  // they stay queued
  const int port_a = free_port();
  stack.start_daemon({{"http.listen", "\"127.0.0.1:" + std::to_string(port_a) + "\""}, {"dispatch.instance_id", "a"}});
  const int port_b = free_port();
  stack.start_daemon({{"http.listen", "\"127.0.0.1:" + std::to_string(port_b) + "\""}, {"dispatch.instance_id", "b"}});
  auto queued_of = [](const std::string& body) {
    auto at = body.find("klingq_jobs{state=\"queued\"} ");
    return at == std::string::npos ? -1.0 : std::stod(body.substr(at + 27));
  };
  auto publisher_of = [](const std::string& body) { return body.find("\nklingq_metrics_publisher 1") != std::string::npos; };
  REQUIRE(Stack::wait_until([&] {
    auto a = http_call("127.0.0.1:" + std::to_string(port_a), "GET", "/metrics").body;
    auto b = http_call("127.0.0.1:" + std::to_string(port_b), "GET", "/metrics").body;
    return queued_of(a) + queued_of(b) == 5 && publisher_of(a) != publisher_of(b) &&
           b.find("\nklingq_instances 2") == std::string::npos && a.find("\nklingq_instances 2") != std::string::npos;
  }, 20s));
  auto a = http_call("127.0.0.1:" + std::to_string(port_a), "GET", "/metrics").body;
  CHECK(publisher_of(a));  // the older instance
  CHECK(a.find("\nklingq_process_open_fds ") != std::string::npos);
  CHECK(a.find("\nklingq_process_resident_memory_bytes ") != std::string::npos);
  CHECK(a.find("\nklingq_process_cpu_seconds_total ") != std::string::npos);
  // The oldest stops: the other takes over.
  stack.daemons.front()->signal(SIGTERM);
  REQUIRE(stack.daemons.front()->wait(15s));
  CHECK(Stack::wait_until([&] {
    auto b = http_call("127.0.0.1:" + std::to_string(port_b), "GET", "/metrics").body;
    return publisher_of(b) && queued_of(b) == 5;
  }, 20s));
}

TEST_CASE("operations: out of file descriptors, accept backs off, logs once per interval and /readyz still answers") {
  Stack stack({"--plan", "free"});
  const int http_port = free_port();
  const std::string ops = "127.0.0.1:" + std::to_string(http_port);
  auto overrides = stack.with_webhooks({{"http.listen", "\"" + ops + "\""}});
  const int webhook_port = std::stoi(overrides["webhook.listen"].substr(overrides["webhook.listen"].rfind(':') + 1));
  auto path = stack.write_config(overrides);
  Process daemon({"/bin/sh", "-c", std::string("ulimit -n 64 && exec ") + KLINGQD_BINARY + " --config " + path},
                 {{"KLINGQ_API_KEY", sim_api_key}});
  REQUIRE_MESSAGE(daemon.wait_for_line("klingqd ready", 15s), daemon.stderr_text());
  // Idle keep-alive connections to the webhook port until klingqd has no descriptor left.
  std::vector<int> sockets;
  for (int i = 0; i < 120; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(webhook_port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    sockets.push_back(fd);
  }
  REQUIRE(Stack::wait_until([&] { return daemon.stderr_text().find("http_accept_failed") != std::string::npos; }, 10s));
  // The ops listener keeps a descriptor in reserve for exactly this.
  auto ready = http_call(ops, "GET", "/readyz");
  CHECK_MESSAGE((ready.status == 200 || ready.status == 503), daemon.stderr_text());
  // Three more seconds of exhaustion: before, about 60 lines (one per 50 ms); now one per 10 s.
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  Stack::wait_until([&] { return std::chrono::steady_clock::now() >= deadline; }, 4s);
  std::string failures;
  std::istringstream all(daemon.stderr_text());
  for (std::string line; std::getline(all, line);) {
    if (line.find("http_accept") != std::string::npos) failures += line + "\n";
  }
  CHECK_MESSAGE(count_of(daemon.stderr_text(), "http_accept_failed") <= 2, failures);
  for (int fd : sockets) close(fd);
  CHECK(Stack::wait_until([&] { return daemon.stderr_text().find("http_accept_recovered") != std::string::npos; }, 10s));
  daemon.signal(SIGTERM);
  daemon.wait(15s);
}

TEST_CASE("operations: a job that completed after a transient error has no current error in klingq jobs") {
  const std::string url = PgCluster::shared().migrated_database();
  pqxx::connection connection(url);
  klingq::dispatcher::QueueSettings settings;
  settings.instance = "polish-test";
  settings.plan = {0, 0, 0};
  klingq::dispatcher::ensure_account(connection, settings);
  {
    pqxx::work tx(connection);
    tx.exec("INSERT INTO klingq.jobs (prompt, state, remote_id, credit_cost, submitted_at, attempts, last_error) "
            "VALUES ('p', 'submitted', 'r-1', 100, now(), 2, "
            "'{\"last\": {\"class\": \"transient\", \"status\": 503, \"message\": \"busy\", \"attempt\": 1}, "
            "\"history\": [{\"class\": \"transient\", \"status\": 503, \"message\": \"busy\", \"attempt\": 1}]}')");
    tx.commit();
  }
  auto applied = klingq::dispatcher::apply_completion(
      connection, settings, klingq::api::Completion{"r-1", "completed", "https://cdn/x.mp4", "{}", ""});
  REQUIRE(applied.result == klingq::dispatcher::CompletionResult::applied);
  auto jobs = json_of(cli({"--database", url, "jobs", "--json"}));
  const auto& job = jobs.at("jobs").as_array().at(0).as_object();
  CHECK(job.at("state").as_string() == "completed");
  CHECK(job.at("error_class").is_null());
  CHECK(job.at("error_message").is_null());
  // The history keeps what happened.
  pqxx::read_transaction tx(connection);
  CHECK(tx.exec1("SELECT jsonb_array_length(last_error -> 'history') FROM klingq.jobs")[0].as<int>() == 1);
}

TEST_CASE("dashboard: the credits-per-day bar chart pivots its long rows, the jobs panel reads the publisher") {
  std::ifstream file(std::string(KLINGQ_SOURCE_DIR) + "/dashboards/klingq.json");
  std::stringstream text;
  text << file.rdbuf();
  auto dashboard = boost::json::parse(text.str()).as_object();
  bool checked_chart = false, checked_jobs = false;
  for (const auto& panel_value : dashboard.at("panels").as_array()) {
    const auto& panel = panel_value.as_object();
    if (panel.at("type").as_string() == "barchart") {
      // klingq.credit_spend gives (day, batch, credits) rows: Grafana's bar chart needs a
      // column per batch, which groupingToMatrix makes.
      REQUIRE(panel.contains("transformations"));
      const auto& transformation = panel.at("transformations").as_array().at(0).as_object();
      CHECK(transformation.at("id").as_string() == "groupingToMatrix");
      CHECK(transformation.at("options").as_object().at("rowField").as_string() == "day");
      CHECK(transformation.at("options").as_object().at("columnField").as_string() == "batch");
      CHECK(panel.at("options").as_object().at("xField").as_string() == "day\\batch");
      checked_chart = true;
    }
    if (panel.at("title").as_string() == "Jobs by state") {
      auto expr = std::string(panel.at("targets").as_array().at(0).as_object().at("expr").as_string());
      CHECK(expr.find("klingq_metrics_publisher == 1") != std::string::npos);
      checked_jobs = true;
    }
  }
  CHECK(checked_chart);
  CHECK(checked_jobs);
}
