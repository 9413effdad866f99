// The proxy settings without a network: lib/http's URL and NO_PROXY parsing, the Basic
// credentials, the config keys and which environment variable wins, and how a 407
// is classified.
#include "api/protocol.hpp"
#include "config/config.hpp"
#include "dispatcher/connect_options.hpp"
#include "http/connect.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

using namespace klingq;

namespace {

std::string parse_error(const std::string& url) {
  try {
    http::parse_proxy_url(url);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

std::string config_error(const std::string& yaml) {
  try {
    config::parse(yaml).validate();
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}

// Sets (or with nullptr unsets) an environment variable for one scope.
struct ScopedEnv {
  ScopedEnv(const char* name, const char* value) : name(name) {
    if (const char* old = std::getenv(name)) saved = old, had = true;
    if (value) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (had) setenv(name, saved.c_str(), 1);
    else unsetenv(name);
  }
  const char* name;
  std::string saved;
  bool had = false;
};

}  // namespace

TEST_CASE("proxy: Basic credentials are RFC 7617's encoding") {
  CHECK(http::basic_authorization("Aladdin:open sesame") == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
  CHECK(http::basic_authorization("a:") == "Basic YTo=");
}

TEST_CASE("proxy: URLs with and without scheme, port and percent-encoded credentials") {
  auto plain = http::parse_proxy_url("http://proxy.corp:3128");
  CHECK(plain.host == "proxy.corp");
  CHECK(plain.port == "3128");
  CHECK(plain.authorization.empty());
  CHECK(plain.display == "http://proxy.corp:3128");

  auto bare = http::parse_proxy_url("proxy.corp");  // as often found in $http_proxy
  CHECK(bare.port == "80");
  auto slash = http::parse_proxy_url("HTTP://10.0.0.1:8080/");
  CHECK(slash.host == "10.0.0.1");
  CHECK(slash.port == "8080");
  auto v6 = http::parse_proxy_url("http://[fd00::1]:3128");
  CHECK(v6.host == "fd00::1");
  CHECK(v6.display == "http://[fd00::1]:3128");

  auto with_user = http::parse_proxy_url("http://Aladdin:open%20sesame@proxy:3128");
  CHECK(with_user.authorization == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
  CHECK(with_user.display == "http://<redacted>@proxy:3128");
  // A password may hold '@' (encoded or not: the last '@' ends the userinfo).
  CHECK(http::parse_proxy_url("http://u:p@ss@proxy:1").authorization == http::basic_authorization("u:p@ss"));
  CHECK(http::parse_proxy_url("http://u:p%40ss@proxy:1").authorization == http::basic_authorization("u:p@ss"));
}

TEST_CASE("proxy: unusable URLs say why without repeating the password") {
  CHECK(parse_error("https://proxy:3128").find("https:// proxies are not supported") != std::string::npos);
  CHECK(parse_error("socks5://u:hunter2@proxy:1080").find("unsupported scheme 'socks5'") != std::string::npos);
  CHECK(parse_error("http://proxy:3128/path").find("no path") != std::string::npos);
  CHECK(parse_error("http://u:hunter2@proxy:99999").find("bad host or port") != std::string::npos);
  CHECK(parse_error("http://u:hunter2@proxy:99999").find("hunter2") == std::string::npos);
  CHECK(parse_error("http://:hunter2@proxy:1").find("without a user name") != std::string::npos);
  CHECK(parse_error("http://u:bad%zzenc@proxy:1").find("percent-encoding") != std::string::npos);
  CHECK(parse_error("http://").find("no host") != std::string::npos);
}

TEST_CASE("proxy: NO_PROXY matches hosts, their subdomains, addresses and ports") {
  const std::string list = "localhost, .internal.corp,example.com:8443, 10.1.2.3 *.svc";
  CHECK(http::no_proxy_matches(list, "localhost", "80"));
  CHECK(http::no_proxy_matches(list, "LOCALHOST", "80"));
  CHECK(http::no_proxy_matches(list, "api.internal.corp", "443"));
  CHECK(http::no_proxy_matches(list, "internal.corp", "443"));
  CHECK_FALSE(http::no_proxy_matches(list, "notinternal.corp", "443"));
  CHECK(http::no_proxy_matches(list, "example.com", "8443"));
  CHECK_FALSE(http::no_proxy_matches(list, "example.com", "443"));
  CHECK(http::no_proxy_matches(list, "10.1.2.3", "443"));
  CHECK_FALSE(http::no_proxy_matches(list, "10.1.2.30", "443"));
  CHECK(http::no_proxy_matches(list, "db.svc", "5432"));
  CHECK_FALSE(http::no_proxy_matches(list, "api.doitong.com", "443"));
  CHECK(http::no_proxy_matches("*", "anything", "1"));
  CHECK(http::no_proxy_matches("[::1]:8080", "::1", "8080"));
  CHECK_FALSE(http::no_proxy_matches("", "localhost", "80"));

  http::ConnectOptions options;
  options.https_proxy = http::parse_proxy_url("http://proxy:3128");
  options.no_proxy = "127.0.0.1";
  CHECK(http::proxy_for(options, {true, "api.doitong.com", "443"}) == &*options.https_proxy);
  CHECK(http::proxy_for(options, {true, "127.0.0.1", "443"}) == nullptr);
  CHECK(http::proxy_for(options, {false, "api.doitong.com", "80"}) == nullptr);  // no http proxy set
}

TEST_CASE("proxy: the config keys are validated and named") {
  CHECK(config_error("api:\n  proxy: \"http://proxy:3128\"\n").empty());
  CHECK(config_error("api:\n  proxy: \"https://proxy:3128\"\n").find("'api.proxy': https:// proxies are not supported") !=
        std::string::npos);
  CHECK(config_error("api:\n  proxy: \"http://proxy:3128/x\"\n").find("'api.proxy': must be http://") != std::string::npos);
  CHECK(config_error("api:\n  proxy: \"http://u:p@proxy:3128\"\n  proxy_credentials_file: /etc/x\n")
            .find("'api.proxy_credentials_file'") != std::string::npos);
  CHECK(config_error("api:\n  no_proxy: localhost\n").find("'api.no_proxy'") != std::string::npos);
  CHECK(config_error("api:\n  ca_file: /nonexistent/ca.pem\n").find("'api.ca_file'") != std::string::npos);
  CHECK(config_error("api:\n  ca_dir: /nonexistent\n").find("'api.ca_dir'") != std::string::npos);
  CHECK(config_error("api:\n  ca_dir: /tmp\n").empty());
}

TEST_CASE("proxy: api.proxy wins over the environment - lower-case variables over upper-case") {
  ScopedEnv a("https_proxy", "http://lower:1");
  ScopedEnv b("HTTPS_PROXY", "http://upper:2");
  ScopedEnv c("http_proxy", nullptr);
  ScopedEnv d("HTTP_PROXY", "http://plain:3");
  ScopedEnv e("no_proxy", nullptr);
  ScopedEnv f("NO_PROXY", "localhost");
  config::Config from_env;
  auto choice = config::proxy_choice(from_env);
  CHECK(choice.https == "http://lower:1");
  CHECK(choice.https_source == "https_proxy");
  CHECK(choice.http == "http://plain:3");
  CHECK(choice.http_source == "HTTP_PROXY");
  CHECK(choice.no_proxy == "localhost");
  auto options = dispatcher::connect_options_from(from_env);
  REQUIRE(options.https_proxy);
  CHECK(options.https_proxy->host == "lower");
  REQUIRE(options.http_proxy);
  CHECK(options.http_proxy->host == "plain");

  config::Config configured;
  configured.api.proxy = "http://configured:4";
  choice = config::proxy_choice(configured);
  CHECK(choice.https == "http://configured:4");
  CHECK(choice.http == "http://configured:4");
  CHECK(choice.https_source == "api.proxy");
  CHECK(choice.no_proxy.empty());  // the environment's NO_PROXY goes with the environment's proxies
}

TEST_CASE("proxy: a 407 is unauthorized (dispatch halts), never the job's fault or a retry") {
  http::ClientResult tunnel;
  tunnel.error = http::make_error_code(http::ProxyError::auth_required);
  tunnel.error_detail = "the proxy http://proxy:3128 answered 407 Proxy Authentication Required to CONNECT api:443";
  auto outcome = api::classify_submit(tunnel);
  CHECK(outcome.outcome == api::OutcomeClass::unauthorized);
  CHECK(outcome.http_status == 407);
  CHECK(outcome.message == tunnel.error_detail);
  CHECK_FALSE(api::is_retryable(outcome.outcome));

  http::ClientResult absolute;  // plain http through the proxy: the 407 is the response
  absolute.response.status = 407;
  absolute.response.body = "<h1>who are you</h1>";
  outcome = api::classify_submit(absolute);
  CHECK(outcome.outcome == api::OutcomeClass::unauthorized);
  CHECK(outcome.http_status == 407);
  CHECK(outcome.message.find("from the proxy") != std::string::npos);

  http::ClientResult refused;
  refused.error = http::make_error_code(http::ProxyError::refused);
  refused.error_detail = "the proxy http://proxy:3128 answered 502 Bad Gateway to CONNECT api:443";
  outcome = api::classify_submit(refused);
  CHECK(outcome.outcome == api::OutcomeClass::transient);
  CHECK(outcome.message.find("502 Bad Gateway") != std::string::npos);
}
