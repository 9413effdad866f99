// klingqd on a corporate network: the API reached only through a forward proxy, behind
// a certificate of a private CA, on loopback. The proxy, the TLS front and the CA are
// tests/support/corp_net's; the database, the simulator and klingqd are the real ones.
#include "support/corp_net.hpp"
#include "support/stack.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>

using namespace klingq::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr const char* proxy_user = "klingq";
constexpr const char* proxy_password = "pr0xy-s3cret";

std::string quoted(const std::string& text) { return "\"" + text + "\""; }

// The overrides that send klingqd to the simulator behind the TLS front, trusting `ca`.
std::map<std::string, std::string> behind_front(Stack& stack, const TlsFront& front, const std::string& ca_file,
                                                std::map<std::string, std::string> overrides = {}) {
  overrides.try_emplace("api.base_url", quoted(front.url()));
  overrides.try_emplace("api.ca_file", quoted(ca_file));
  overrides.try_emplace("limits.plan", "enterprise");
  return stack.with_webhooks(std::move(overrides));
}

long long count(const std::vector<std::string>& items, const std::string& prefix) {
  return std::count_if(items.begin(), items.end(), [&](const std::string& item) { return item.rfind(prefix, 0) == 0; });
}

}  // namespace

TEST_CASE("corporate network: jobs complete and videos download through an authenticating proxy and a private CA") {
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1", "--output-bytes", "40000"});
  auto ca = TestCa::make(stack.dir);
  TlsFront front(ca, stack.sim_address);
  ForwardProxy proxy(std::string(proxy_user) + ":" + proxy_password);
  const auto credentials = stack.dir + "/proxy-credentials";
  std::ofstream(credentials) << proxy_user << ":" << proxy_password << "\n";
  const auto videos = stack.dir + "/videos";
  stack.insert_jobs(6);
  auto& daemon = stack.start_daemon(behind_front(stack, front, ca.ca_file,
                                                 {{"api.proxy", quoted(proxy.url())},
                                                  {"api.proxy_credentials_file", quoted(credentials)},
                                                  {"outputs.download", "true"},
                                                  {"outputs.dir", quoted(videos)}}));
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed' AND output_path IS NOT NULL") == 6;
  }, 60s));
  for (const auto& entry : fs::directory_iterator(videos)) {
    if (entry.path().extension() == ".mp4") CHECK(fs::file_size(entry.path()) == 40000);
  }
  // The API only through tunnels to the front (TLS verified against the private CA),
  // the videos (plain http on the simulator) only as absolute-form requests.
  const auto targets = proxy.targets();
  CHECK(proxy.tunnels() >= 1);
  CHECK(count(targets, "CONNECT 127.0.0.1:" + std::to_string(front.port())) == proxy.tunnels());
  CHECK(proxy.forwarded() == 6);
  CHECK(count(targets, "GET http://" + stack.sim_address + "/outputs/") == 6);
  CHECK(proxy.refused() == 0);
  CHECK(front.handshakes() >= 1);
  CHECK(front.failed_handshakes() == 0);
  CHECK(stack.sim_stats().at("accepted").as_int64() == 6);
  // The credentials reach the proxy and nothing else: not the log, not a row.
  for (const auto& authorization : proxy.authorizations()) CHECK(authorization.rfind("Basic ", 0) == 0);
  const auto log = daemon.stderr_text() + daemon.stdout_text();
  CHECK(log.find("api_route") != std::string::npos);
  CHECK(log.find(proxy_password) == std::string::npos);
  CHECK(log.find("<redacted>@127.0.0.1:" + std::to_string(proxy.port())) != std::string::npos);
  CHECK(stack.text("SELECT coalesce(string_agg(coalesce(last_error::text, '') || coalesce(output_error::text, ''), ' '), '') "
                   "FROM klingq.jobs").find(proxy_password) == std::string::npos);
  MESSAGE("proxy: " << proxy.tunnels() << " tunnels, " << proxy.forwarded() << " forwarded; front: "
                    << front.handshakes() << " TLS handshakes");
}

TEST_CASE("corporate network: HTTPS_PROXY from the environment is used - NO_PROXY bypasses it") {
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1"});
  auto ca = TestCa::make(stack.dir);
  TlsFront front(ca, stack.sim_address);
  ForwardProxy proxy;
  stack.insert_jobs(3);
  auto& through = stack.start_daemon(behind_front(stack, front, ca.ca_file), {{"HTTPS_PROXY", proxy.url()}});
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 3; }, 30s));
  CHECK(proxy.tunnels() >= 1);
  CHECK(through.stderr_text().find("(HTTPS_PROXY)") != std::string::npos);
  through.signal(SIGTERM);
  REQUIRE(through.wait(15s));

  const int tunnels_before = proxy.tunnels();
  const auto targets_before = proxy.targets().size();
  stack.insert_jobs(3);
  stack.start_daemon(behind_front(stack, front, ca.ca_file),
                     {{"https_proxy", proxy.url()}, {"no_proxy", "localhost, 127.0.0.1"}});
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 6; }, 30s));
  CHECK(proxy.tunnels() == tunnels_before);
  CHECK(proxy.targets().size() == targets_before);
}

TEST_CASE("corporate network: an http API through HTTP_PROXY goes in absolute form with the proxy's credentials") {
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1"});
  ForwardProxy proxy(std::string(proxy_user) + ":" + proxy_password);
  stack.insert_jobs(3);
  const auto url = "http://" + std::string(proxy_user) + ":" + proxy_password + "@127.0.0.1:" + std::to_string(proxy.port());
  auto& daemon = stack.start_daemon(stack.with_webhooks({{"limits.plan", "enterprise"}}), {{"HTTP_PROXY", url}});
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 3; }, 30s));
  CHECK(proxy.tunnels() == 0);
  CHECK(proxy.refused() == 0);
  CHECK(proxy.forwarded() >= 4);  // three submits and at least one balance query
  CHECK(count(proxy.targets(), "POST http://" + stack.sim_address + "/graphql") >= 3);
  CHECK(stack.sim_stats().at("accepted").as_int64() == 3);
  CHECK(daemon.stderr_text().find(proxy_password) == std::string::npos);
}

TEST_CASE("corporate network: a 407 from the proxy halts dispatch with a clear reason and fails no job") {
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1"});
  auto ca = TestCa::make(stack.dir);
  TlsFront front(ca, stack.sim_address);
  ForwardProxy proxy(std::string(proxy_user) + ":" + proxy_password);
  stack.insert_jobs(3);
  // Wrong password in the URL's userinfo.
  auto& daemon = stack.start_daemon(
      behind_front(stack, front, ca.ca_file, {{"api.proxy", quoted("http://klingq:wrong-pass@127.0.0.1:" + std::to_string(proxy.port()))}}));
  REQUIRE(Stack::wait_until([&] {
    return stack.text("SELECT coalesce(max(halted_reason), '') FROM klingq.account").rfind("407 from the proxy", 0) == 0;
  }, 30s));
  const auto reason = stack.text("SELECT halted_reason FROM klingq.account");
  MESSAGE("halted_reason: " << reason);
  CHECK(reason.find("407 Proxy Authentication Required") != std::string::npos);
  CHECK(reason.find("refused the configured proxy credentials") != std::string::npos);
  CHECK(proxy.refused() >= 1);
  CHECK(stack.sim_stats().at("requests").as_int64() == 0);
  // Not the jobs' fault: none failed, none spent an attempt.
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'failed'") == 0);
  CHECK(stack.scalar("SELECT coalesce(max(attempts), 0) FROM klingq.jobs") == 0);
  REQUIRE(Stack::wait_until([&] { return daemon.stderr_text().find("proxy_auth_required") != std::string::npos; }, 10s));
  CHECK(daemon.stderr_text().find("wrong-pass") == std::string::npos);
  daemon.signal(SIGTERM);
  REQUIRE(daemon.wait(15s));

  // Fixed and restarted: the start lifts the proxy's halt and the jobs go.
  const auto credentials = stack.dir + "/proxy-credentials";
  std::ofstream(credentials) << proxy_user << ":" << proxy_password << "\n";
  stack.start_daemon(behind_front(stack, front, ca.ca_file, {{"api.proxy", quoted(proxy.url())},
                                                             {"api.proxy_credentials_file", quoted(credentials)}}));
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 3; }, 30s));
  CHECK(stack.scalar("SELECT count(*) FROM klingq.account WHERE halted_reason IS NULL") == 1);
}

TEST_CASE("corporate network: a certificate from another CA is refused and the log names the problem") {
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1"});
  auto ca = TestCa::make(stack.dir);
  auto other = TestCa::make(stack.dir, "some other CA");
  TlsFront front(ca, stack.sim_address);
  ForwardProxy proxy;
  stack.insert_jobs(2);
  auto& daemon = stack.start_daemon(behind_front(stack, front, other.ca_file, {{"api.proxy", quoted(proxy.url())}}));
  REQUIRE(Stack::wait_until([&] { return daemon.stderr_text().find("tls_verify_failed") != std::string::npos; }, 20s));
  const auto log = daemon.stderr_text();
  MESSAGE(log.substr(log.find("tls_verify_failed"), 400));
  CHECK(log.find("unable to get local issuer certificate") != std::string::npos);
  CHECK(log.find("subject /CN=127.0.0.1") != std::string::npos);
  // Logged once per problem, not per request.
  REQUIRE(Stack::wait_until([&] { return front.failed_handshakes() >= 3; }, 20s));
  const auto log_now = daemon.stderr_text();
  std::size_t lines = 0;
  for (auto at = log_now.find("tls_verify_failed"); at != std::string::npos; at = log_now.find("tls_verify_failed", at + 1)) ++lines;
  CHECK(lines == 1);
  CHECK(front.handshakes() == 0);
  CHECK(stack.sim_stats().at("requests").as_int64() == 0);
  // Each failing request names it too (the balance query comes first: no job is
  // claimed before klingqd knows the balance).
  REQUIRE(Stack::wait_until([&] {
    const auto& text = daemon.stderr_text();
    auto at = text.find("balance_query_failed");
    return at != std::string::npos &&
           text.find("unable to get local issuer certificate", at) != std::string::npos;
  }, 20s));
}

TEST_CASE("corporate network: bad proxy and CA settings are config errors naming the key or variable") {
  Stack stack({"--plan", "free"});
  auto check = [&](std::map<std::string, std::string> overrides, std::map<std::string, std::string> environment,
                   const std::string& expected) {
    auto path = stack.write_config(overrides);
    for (const char* name : {"https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"}) {
      environment.try_emplace(name, "");
    }
    environment["KLINGQ_API_KEY"] = sim_api_key;
    auto result = run({KLINGQD_BINARY, "--config", path, "--check-config"}, environment);
    INFO(expected << " / " << result.err);
    CHECK(result.exit_code == 2);
    CHECK(result.err.find(expected) != std::string::npos);
    CHECK(result.err.find("s3cret") == std::string::npos);
  };
  check({{"api.proxy", "\"https://proxy.example:3128\""}}, {}, "'api.proxy': https:// proxies are not supported");
  check({{"api.proxy", "\"socks5://u:s3cret@proxy:1080\""}}, {}, "'api.proxy'");
  check({{"api.ca_file", quoted(stack.dir + "/missing.pem")}}, {}, "'api.ca_file'");
  {
    std::ofstream(stack.dir + "/not-a-cert.pem") << "hello\n";
    check({{"api.ca_file", quoted(stack.dir + "/not-a-cert.pem")}}, {}, "'api.ca_file': cannot load the CA file");
  }
  check({{"api.ca_dir", quoted(stack.dir + "/missing-dir")}}, {}, "'api.ca_dir'");
  check({{"api.proxy", "\"http://127.0.0.1:3128\""}, {"api.proxy_credentials_file", quoted(stack.dir + "/none")}}, {},
        "'api.proxy_credentials_file'");
  check({}, {{"HTTPS_PROXY", "http://u:s3cret@proxy:notaport"}}, "environment variable HTTPS_PROXY: proxy URL");
  check({{"api.no_proxy", "\"localhost\""}}, {}, "'api.no_proxy'");
}
