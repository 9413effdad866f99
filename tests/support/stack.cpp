#include "support/stack.hpp"

#include "support/http_call.hpp"
#include "support/pg_cluster.hpp"

#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include <arpa/inet.h>
#include <csignal>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

namespace klingq::testing {

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

Stack::Stack(std::vector<std::string> sim_arguments) {
  database = PgCluster::shared().migrated_database();
  char pattern[] = "/tmp/klingq-stack-XXXXXX";
  dir = mkdtemp(pattern);
  std::vector<std::string> argv = {KLINGQ_SIM_BINARY, "--listen", "127.0.0.1:0", "--api-key", sim_api_key,
                                   "--webhook-secret", sim_webhook_secret};
  argv.insert(argv.end(), sim_arguments.begin(), sim_arguments.end());
  sim = std::make_unique<Process>(argv);
  auto line = sim->wait_for_line("listening on", std::chrono::seconds(10));
  REQUIRE_MESSAGE(line, "klingq-sim did not start: " << sim->stderr_text());
  sim_address = address_from_line(*line);
}

Stack::~Stack() {
  for (auto& daemon : daemons) {
    daemon->signal(SIGKILL);
    daemon->wait(std::chrono::seconds(5));
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

std::string Stack::write_config(std::map<std::string, std::string> overrides) {
  std::map<std::string, std::string> values = {
      {"database.url", "\"" + database + "\""},
      {"api.base_url", "\"http://" + sim_address + "\""},
      {"api.request_timeout_ms", "2000"},
      {"limits.plan", "free"},
      {"limits.window_seconds", "1"},  // the simulators here run 60x: a minute is a second
      {"dispatch.safety_poll_ms", "500"},
      {"dispatch.lease_seconds", "5"},
      {"dispatch.retry_base_ms", "50"},
      {"dispatch.retry_max_ms", "400"},
      {"credits.refresh_seconds", "1"},
      {"poll.first_after_seconds", "1"},
      {"poll.max_interval_seconds", "1"},
      {"poll.webhook_grace_seconds", "2"},
      {"poll.min_interval_ms", "200"},  // the simulators' 60x: 2 s are 33 ms of theirs
      {"log.level", "debug"},
  };
  for (auto& [key, value] : overrides) values[key] = value;
  std::map<std::string, std::string> sections;
  for (auto& [key, value] : values) {
    auto dot = key.find('.');
    auto section = key.substr(0, dot);
    auto rest = key.substr(dot + 1);
    auto inner = rest.find('.');
    if (inner == std::string::npos) {
      sections[section] += "  " + rest + ": " + value + "\n";
    } else {  // credits.cost.standard_5
      sections[section] += "  " + rest.substr(0, inner) + ":\n    " + rest.substr(inner + 1) + ": " + value + "\n";
    }
  }
  std::string yaml;
  for (auto& [section, body] : sections) yaml += section + ":\n" + body;
  static int counter = 0;
  auto path = dir + "/klingq-" + std::to_string(++counter) + ".yaml";
  std::ofstream(path) << yaml;
  return path;
}

std::map<std::string, std::string> Stack::with_webhooks(std::map<std::string, std::string> overrides) {
  const int port = free_port();
  overrides["webhook.listen"] = "\"127.0.0.1:" + std::to_string(port) + "\"";
  overrides["webhook.public_url"] = "\"http://127.0.0.1:" + std::to_string(port) + "/klingq/webhook\"";
  overrides["webhook.secrets"] = std::string("[\"") + sim_webhook_secret + "\"]";
  return overrides;
}

Process& Stack::start_daemon(std::map<std::string, std::string> overrides,
                             std::map<std::string, std::string> environment) {
  auto path = write_config(std::move(overrides));
  last_config_path = path;
  if (!environment.count("KLINGQ_API_KEY")) environment["KLINGQ_API_KEY"] = sim_api_key;
  // klingqd honours the proxy variables: a proxy set for the machine running the tests
  // must not sit between klingqd and the loopback simulator (empty counts as unset).
  for (const char* name : {"https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"}) {
    if (!environment.count(name)) environment[name] = "";
  }
  daemons.push_back(std::make_unique<Process>(std::vector<std::string>{KLINGQD_BINARY, "--config", path},
                                              environment));
  auto& daemon = *daemons.back();
  auto ready = daemon.wait_for_line("klingqd ready", std::chrono::seconds(15));
  REQUIRE_MESSAGE(ready, "klingqd did not start: " << daemon.stderr_text());
  return daemon;
}

void Stack::exec(const std::string& sql) {
  pqxx::connection connection(database);
  pqxx::work tx(connection);
  tx.exec(sql);
  tx.commit();
}

long long Stack::scalar(const std::string& sql) {
  pqxx::connection connection(database);
  pqxx::read_transaction tx(connection);
  auto row = tx.exec1(sql);
  return row[0].is_null() ? 0 : row[0].as<long long>();
}

std::string Stack::text(const std::string& sql) {
  pqxx::connection connection(database);
  pqxx::read_transaction tx(connection);
  auto row = tx.exec1(sql);
  return row[0].is_null() ? "" : row[0].as<std::string>();
}

void Stack::insert_jobs(int count, const std::string& extra_columns, const std::string& extra_values) {
  exec("INSERT INTO klingq.jobs (prompt" + (extra_columns.empty() ? "" : ", " + extra_columns) +
       ") SELECT 'prompt number ' || g" + (extra_values.empty() ? "" : ", " + extra_values) +
       " FROM generate_series(1, " + std::to_string(count) + ") g");
}

boost::json::object Stack::sim_stats() {
  auto reply = http_call(sim_address, "GET", "/_sim/stats");
  REQUIRE(reply.status == 200);
  return boost::json::parse(reply.body).as_object();
}

void Stack::sim_config(const boost::json::object& changes) {
  auto reply = http_call(sim_address, "POST", "/_sim/config", boost::json::serialize(changes));
  REQUIRE_MESSAGE(reply.status == 200, reply.body);
}

bool Stack::wait_until(const std::function<bool()>& condition, std::chrono::milliseconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

}  // namespace klingq::testing
