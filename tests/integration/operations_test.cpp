// klingqd as an operator meets it: the sd_notify protocol on a simulated notify
// socket, /metrics and /readyz on http.listen, and secrets that never leak.
#include "support/http_call.hpp"
#include "support/stack.hpp"

#include "util/version.hpp"

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace klingq::testing;
using namespace std::chrono_literals;

namespace {
// A datagram socket standing in for systemd's $NOTIFY_SOCKET.
struct NotifySocket {
  explicit NotifySocket(const std::string& path) : path(path) {
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    timeval timeout{0, 100000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  ~NotifySocket() { close(fd); }
  // Every datagram received so far, joined by '|'.
  std::string drain() {
    char buffer[4096];
    for (;;) {
      auto n = recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      received += std::string(buffer, static_cast<std::size_t>(n)) + "|";
    }
    return received;
  }
  std::string path;
  std::string received;
  int fd = -1;
};
}  // namespace

TEST_CASE("operations: READY, STATUS, WATCHDOG and STOPPING reach the notify socket - /metrics and /readyz answer") {
  Stack stack({"--plan", "free", "--time-scale", "60", "--gen-seconds", "1:1"});
  stack.insert_jobs(3);
  NotifySocket notify(stack.dir + "/notify.sock");
  const int http_port = free_port();
  auto overrides = stack.with_webhooks({{"http.listen", "\"127.0.0.1:" + std::to_string(http_port) + "\""}});
  auto& daemon = stack.start_daemon(overrides, {{"NOTIFY_SOCKET", notify.path}, {"WATCHDOG_USEC", "3000000"}});
  REQUIRE(Stack::wait_until([&] { return notify.drain().find("READY=1") != std::string::npos; }, 10s));
  REQUIRE(Stack::wait_until([&] { return notify.drain().find("WATCHDOG=1") != std::string::npos; }, 10s));
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 3;
  }, 30s));
  REQUIRE(Stack::wait_until([&] { return notify.drain().find("STATUS=queued 0") != std::string::npos; }, 15s));

  const std::string address = "127.0.0.1:" + std::to_string(http_port);
  CHECK(http_call(address, "GET", "/healthz").status == 200);
  CHECK(http_call(address, "GET", "/readyz").status == 200);
  auto metrics = http_call(address, "GET", "/metrics");
  REQUIRE(metrics.status == 200);
  CHECK(metrics.body.find("klingq_submissions_total{outcome=\"accepted\"} 3") != std::string::npos);
  CHECK(metrics.body.find("klingq_webhooks_total{result=\"accepted\"}") != std::string::npos);
  CHECK(metrics.body.find("klingq_parallel_limit 1") != std::string::npos);
  MESSAGE("sample of /metrics:\n" << metrics.body.substr(0, 1500));

  daemon.signal(SIGTERM);
  auto code = daemon.wait(15s);
  REQUIRE(code);
  CHECK(*code == 0);
  CHECK(notify.drain().find("STOPPING=1") != std::string::npos);
}

TEST_CASE("operations: a bad config refuses to start and names the key - a bad reload keeps the old one") {
  Stack stack({"--plan", "free", "--time-scale", "60", "--gen-seconds", "1:1"});
  auto path = stack.write_config({{"limits.plan", "gold"}});
  auto result = run({KLINGQD_BINARY, "--config", path, "--check-config"});
  CHECK(result.exit_code == 2);
  CHECK(result.err.find("limits.plan") != std::string::npos);

  auto& daemon = stack.start_daemon({});
  // Break the running daemon's config file, then SIGHUP: it refuses and carries on.
  std::ofstream(stack.last_config_path) << "limits:\n  plan: gold\n";
  daemon.signal(SIGHUP);
  REQUIRE(Stack::wait_until([&] { return daemon.stderr_text().find("config_reload_refused") != std::string::npos; }, 10s));
  CHECK(daemon.stderr_text().find("limits.plan") != std::string::npos);
  stack.insert_jobs(2);
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 2;
  }, 30s));
}

TEST_CASE("operations: klingqd names a usage problem - --config without a file, or a directory - and exits 2") {
  auto missing = run({KLINGQD_BINARY, "--config"});
  CHECK(missing.exit_code == 2);
  CHECK(missing.err.find("--config needs a FILE") != std::string::npos);
  CHECK(missing.err.find("unknown argument") == std::string::npos);

  const auto dir = std::filesystem::temp_directory_path().string();
  auto directory = run({KLINGQD_BINARY, "--config", dir, "--check-config"});
  CHECK(directory.exit_code == 2);
  CHECK(directory.err.find("is a directory") != std::string::npos);
  CHECK(directory.out.find("config ok") == std::string::npos);
  // The CLI reads the same file: it refuses too, instead of falling back to the default database.
  auto cli = run({KLINGQ_CLI_BINARY, "--config", dir, "status"});
  CHECK(cli.exit_code == 2);
  CHECK(cli.err.find("is a directory") != std::string::npos);
}

TEST_CASE("operations: every binary prints its version and exits 0") {
  for (const auto& binary : {std::pair{KLINGQD_BINARY, "klingqd"}, std::pair{KLINGQ_CLI_BINARY, "klingq"},
                             std::pair{KLINGQ_SIM_BINARY, "klingq-sim"}}) {
    const std::string name = binary.second;
    auto result = run({binary.first, "--version"});
    CAPTURE(name);
    CHECK(result.exit_code == 0);
    CHECK(result.out == std::string(name) + " " + klingq::version() + "\n");
  }
}

TEST_CASE("operations: canary secrets appear in no log, metric, table, event or command line") {
  const std::string key_canary = "CANARY-api-key-7f3a9";
  Stack stack({"--plan", "starter", "--time-scale", "60", "--gen-seconds", "1:1", "--fault-500", "0.2",
               "--api-key", key_canary});
  stack.insert_jobs(6);
  const int http_port = free_port();
  auto& daemon = stack.start_daemon(
      stack.with_webhooks({{"limits.plan", "starter"}, {"log.level", "debug"},
                           {"http.listen", "\"127.0.0.1:" + std::to_string(http_port) + "\""}}),
      {{"KLINGQ_API_KEY", key_canary}});
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 6;
  }, 40s));
  std::ifstream cmdline("/proc/" + std::to_string(daemon.pid()) + "/cmdline");
  std::stringstream args;
  args << cmdline.rdbuf();
  auto metrics = http_call("127.0.0.1:" + std::to_string(http_port), "GET", "/metrics").body;
  daemon.signal(SIGTERM);
  daemon.wait(15s);
  const std::string secret_canary = sim_webhook_secret;
  for (const auto& canary : {key_canary, secret_canary}) {
    CAPTURE(canary);
    CHECK(daemon.stderr_text().find(canary) == std::string::npos);
    CHECK(daemon.stdout_text().find(canary) == std::string::npos);
    CHECK(metrics.find(canary) == std::string::npos);
    CHECK(args.str().find(canary) == std::string::npos);
    CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE jobs::text LIKE '%" + canary + "%'") == 0);
    CHECK(stack.scalar("SELECT count(*) FROM klingq.job_events e WHERE e::text LIKE '%" + canary + "%'") == 0);
    CHECK(stack.scalar("SELECT count(*) FROM klingq.account a WHERE a::text LIKE '%" + canary + "%'") == 0);
    CHECK(stack.scalar("SELECT count(*) FROM klingq.instances i WHERE i::text LIKE '%" + canary + "%'") == 0);
  }
  CHECK(daemon.stderr_text().find("submitted") != std::string::npos);  // debug logging was on
}
