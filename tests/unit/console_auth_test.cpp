// Console access (lib/console/auth) and its token files (config::load_console_tokens):
// roles from bearer tokens, stateless session cookies, CSRF tokens, and token files
// read like the API key file, refused with the key named and never the token.
#include "config/config.hpp"
#include "console/auth.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

using namespace klingq;
using namespace klingq::console;

namespace {

const std::string op1 = "operator-token-one-0123456789";
const std::string op2 = "operator-token-two-0123456789";
const std::string view1 = "viewer-token-one-0123456789";

config::ConsoleTokens tokens(bool viewers = true) {
  config::ConsoleTokens t;
  t.operators = {config::Secret(op1), config::Secret(op2)};
  if (viewers) {
    t.viewers = {config::Secret(view1)};
    t.viewers_configured = true;
  }
  return t;
}

const TimePoint now = from_epoch_ms(1'800'000'000'000);

std::string temp_file(const std::string& text) {
  auto path = std::filesystem::temp_directory_path() / ("klingq-tokens-" + std::to_string(getpid()) + "-" +
                                                        std::to_string(std::hash<std::string>{}(text)));
  std::ofstream(path) << text;
  return path.string();
}

}  // namespace

TEST_CASE("console auth: bearer tokens map to their role and line") {
  Access access(tokens());
  CHECK(access.from_token(op2).role == Role::operator_);
  CHECK(access.from_token(op2).index == 2);
  CHECK(access.from_token(op2).who() == "operator#2");
  CHECK(access.from_token(view1).role == Role::viewer);
  CHECK(access.from_token(view1).who() == "viewer#1");
  CHECK(access.from_token("nope").role == Role::none);
  CHECK(access.from_token("").role == Role::none);
  CHECK(access.from_token(op1 + "x").role == Role::none);
  CHECK(access.from_token(op1.substr(0, op1.size() - 1)).role == Role::none);
  CHECK(access.from_authorization("Bearer " + op1).role == Role::operator_);
  CHECK(access.from_authorization("bearer  " + view1 + " ").role == Role::viewer);
  CHECK(access.from_authorization("Basic " + op1).role == Role::none);
  CHECK(access.from_authorization(op1).role == Role::none);
  CHECK(access.reads_need_token());
  CHECK_FALSE(Access(tokens(false)).reads_need_token());
  CHECK(constant_time_equal("abc", "abc"));
  CHECK_FALSE(constant_time_equal("abc", "abd"));
  CHECK_FALSE(constant_time_equal("abc", "abcd"));
}

TEST_CASE("console auth: a session cookie names the token's line, never the token, and expires") {
  Access access(tokens());
  auto who = access.from_token(op2);
  auto cookie = access.session_cookie(who, now);
  CHECK(cookie.find(op2) == std::string::npos);
  CHECK(cookie.rfind("operator.2.", 0) == 0);
  auto back = access.from_cookie(cookie, now + std::chrono::hours(1));
  CHECK(back.role == Role::operator_);
  CHECK(back.index == 2);
  CHECK(back.via_cookie);
  // Expired after the session lifetime.
  CHECK(access.from_cookie(cookie, now + Access::session_lifetime + std::chrono::seconds(1)).role == Role::none);
  // Forged: another role, another line, another expiry or MAC.
  std::string forged = cookie;
  forged.replace(0, 8, "viewer");  // "operator" -> "viewer"
  CHECK(access.from_cookie(forged, now).role == Role::none);
  auto parts_at = cookie.rfind('.');
  std::string bad_mac = cookie.substr(0, parts_at + 1) + std::string(64, '0');
  CHECK(access.from_cookie(bad_mac, now).role == Role::none);
  std::string later = cookie;
  later.replace(11, 1, later[11] == '9' ? "8" : "9");  // a digit of the expiry
  CHECK(access.from_cookie(later, now).role == Role::none);
  CHECK(access.from_cookie("garbage", now).role == Role::none);
  CHECK(access.from_cookie("operator.x.1.ab", now).role == Role::none);
  // Removing the token from its file ends its sessions.
  config::ConsoleTokens fewer = tokens();
  fewer.operators.pop_back();
  CHECK(Access(fewer).from_cookie(cookie, now).role == Role::none);
  // A changed token on that line ends them too.
  config::ConsoleTokens changed = tokens();
  changed.operators[1] = config::Secret("a-new-operator-token-000000");
  CHECK(Access(changed).from_cookie(cookie, now).role == Role::none);
}

TEST_CASE("console auth: the CSRF token belongs to one session") {
  Access access(tokens());
  auto a = access.from_cookie(access.session_cookie(access.from_token(op1), now), now);
  auto b = access.from_cookie(access.session_cookie(access.from_token(op2), now), now);
  auto csrf = access.csrf_token(a);
  CHECK(csrf.size() == 64);
  CHECK(csrf.find(op1) == std::string::npos);
  CHECK(access.csrf_ok(a, csrf));
  CHECK_FALSE(access.csrf_ok(b, csrf));
  CHECK_FALSE(access.csrf_ok(a, ""));
  CHECK_FALSE(access.csrf_ok(a, csrf.substr(1)));
  // A bearer identity has no CSRF token (it needs none).
  CHECK(access.csrf_token(access.from_token(op1)).empty());
}

TEST_CASE("console auth: cookie header parsing") {
  CHECK(cookie_value("a=1; klingq_session=xyz; b=2", "klingq_session") == std::optional<std::string>("xyz"));
  CHECK(cookie_value("klingq_session=", "klingq_session") == std::optional<std::string>(""));
  CHECK_FALSE(cookie_value("a=1", "klingq_session"));
  CHECK_FALSE(cookie_value("", "klingq_session"));
}

TEST_CASE("console tokens: files of tokens, one a line, refused with the key named") {
  config::Config cfg;
  cfg.http.listen = "127.0.0.1:0";
  CHECK(config::load_console_tokens(cfg).operators.empty());
  CHECK_FALSE(config::load_console_tokens(cfg).viewers_configured);

  cfg.console.operator_token_file = temp_file("# operators\n" + op1 + "\n\n  " + op2 + "  \r\n");
  cfg.console.viewer_token_file = temp_file(view1 + "\n");
  auto t = config::load_console_tokens(cfg);
  REQUIRE(t.operators.size() == 2);
  CHECK(t.operators[0].reveal() == op1);
  CHECK(t.operators[1].reveal() == op2);
  CHECK(t.viewers_configured);
  REQUIRE(t.viewers.size() == 1);

  auto refused = [&](const std::string& text) {
    config::Config c = cfg;
    c.console.viewer_token_file = "";
    c.console.operator_token_file = text;
    try {
      config::load_console_tokens(c);
    } catch (const config::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  auto missing = refused("/nonexistent/klingq-tokens");
  CHECK(missing.find("console.operator_token_file") != std::string::npos);
  CHECK(refused(temp_file("# only a comment\n\n")).find("holds no token") != std::string::npos);
  auto short_token = refused(temp_file("short\n"));
  CHECK(short_token.find("shorter than 16") != std::string::npos);
  CHECK(short_token.find("short\n") == std::string::npos);
  auto two_words = refused(temp_file(op1 + " " + op2 + "\n"));
  CHECK(two_words.find("more than one word") != std::string::npos);
  CHECK(two_words.find(op1) == std::string::npos);
  CHECK(refused(std::filesystem::temp_directory_path().string()).find("directory") != std::string::npos);

  // A token file without http.listen is a config error naming the key.
  config::Config no_listen;
  no_listen.console.operator_token_file = cfg.console.operator_token_file;
  CHECK_THROWS_WITH_AS(no_listen.validate(), doctest::Contains("console.operator_token_file"), config::ConfigError);
}
