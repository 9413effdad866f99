// Issue 18's operator-facing details that need no I/O: config errors that name the
// problem, redaction by libpq's own parse, what a SIGHUP must not apply, an over-long
// input line as one bad line, JSON lines that refuse quoted numbers and repeated keys,
// a webhook url of the wrong type, the dispatch_held rule, JSON log lines, and the
// process and publisher metrics.
#include "api/protocol.hpp"
#include "config/config.hpp"
#include "dispatcher/hold_log.hpp"
#include "loader/reader.hpp"
#include "ops/metrics.hpp"
#include "util/log.hpp"
#include "webhook/receiver.hpp"
#include "webhook/signature.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>

#include <unistd.h>

#include <string>
#include <vector>

using namespace klingq;

namespace {
std::string config_error(const std::string& yaml) {
  try {
    config::parse(yaml).validate();
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("config: a repeated key and a value where a section belongs name the problem") {
  auto twice = config_error("limits:\n  plan: free\n  plan: pro\n");
  CHECK(twice.find("'limits.plan'") != std::string::npos);
  CHECK(twice.find("appears twice") != std::string::npos);
  auto sections_twice = config_error("log:\n  level: info\nlog:\n  json: true\n");
  CHECK(sections_twice.find("'log': appears twice") != std::string::npos);
  auto scalar = config_error("log: debug\n");
  CHECK(scalar.find("'log': is a section") != std::string::npos);
  CHECK(scalar.find("level: ...") != std::string::npos);
  CHECK(scalar.find("unknown key") == std::string::npos);
  CHECK(config_error("api: [1, 2]\n").find("'api': is a section") != std::string::npos);
}

TEST_CASE("redaction parses the connection string as libpq does") {
  // The escaped space used to end the pattern's match: "def" leaked.
  auto escaped = config::redact_url(R"(host=db password=abc\ def dbname=q)");
  CHECK(escaped.find("abc") == std::string::npos);
  CHECK(escaped.find("def") == std::string::npos);
  CHECK(escaped.find("dbname=q") != std::string::npos);
  auto quoted = config::redact_url("host=db password='s3cr et' dbname=q");
  CHECK(quoted.find("s3cr") == std::string::npos);
  CHECK(quoted.find(" et") == std::string::npos);
  auto spaced = config::redact_url("host=db password = hunter2 user=app");
  CHECK(spaced.find("hunter2") == std::string::npos);
  CHECK(spaced.find("user=app") != std::string::npos);
  auto uri = config::redact_url("postgresql://app:p%40ss@db/q?password=other&sslmode=require");
  CHECK(uri.find("p%40ss") == std::string::npos);
  CHECK(uri.find("other") == std::string::npos);
  CHECK(uri.find("sslmode=require") != std::string::npos);
  // What libpq refuses is not shown at all: a piece of it might be the password.
  auto broken = config::redact_url("host=db password=abc\\");
  CHECK(broken.find("abc") == std::string::npos);
  CHECK(config::redact_url("host=db 'password=x") .find("x") == std::string::npos);
  CHECK_FALSE(config::valid_connection_string("notaurl"));
  CHECK(config::valid_connection_string("postgresql:///klingq"));
  CHECK(config::valid_connection_string(""));

  auto reason = config::redact_database_error(R"(host=db password=abc\ def)",
                                              "FATAL: password authentication failed (abc def)\n");
  CHECK(reason == "FATAL: password authentication failed (<redacted>)");
  CHECK(config::redact_database_error("notaurl", "missing \"=\" after \"notaurl\"").find("notaurl") ==
        std::string::npos);
}

TEST_CASE("reload: the keys bound at start keep their running value and are named") {
  auto running = config::parse("http:\n  listen: 127.0.0.1:9000\nlog:\n  level: info\n");
  auto fresh = config::parse(
      "http:\n  listen: 127.0.0.1:9001\nlog:\n  level: debug\ndatabase:\n  url: postgresql:///other\n"
      "limits:\n  rpm: 5\n");
  auto kept = config::keep_restart_keys(running, fresh);
  CHECK(kept == std::vector<std::string>{"database.url", "http.listen"});
  CHECK(fresh.http.listen == "127.0.0.1:9000");
  CHECK(fresh.database.url == running.database.url);
  CHECK(fresh.log.level == "debug");  // reloadable keys take the new value
  CHECK(*fresh.limits.rpm == 5);
  auto same = config::parse("log:\n  level: debug\n");
  CHECK(config::keep_restart_keys(config::parse(""), same).empty());
}

TEST_CASE("loader: a line over the limit is one bad line, the lines around it load") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const std::string input = std::string(R"({"prompt": "before"})") + "\n" + "{\"prompt\": \"" +
                            std::string(300, 'x') + "\"}\n" + R"({"prompt": "after"})" + "\n";
  REQUIRE(::write(fds[1], input.data(), input.size()) == static_cast<ssize_t>(input.size()));
  ::close(fds[1]);
  loader::LineSource source(fds[0], 64);
  loader::JsonLinesReader reader(source);
  loader::RawRecord record;
  loader::Job job;
  std::vector<std::string> outcomes;
  while (reader.next(record)) {
    auto error = loader::validate(record, job);
    outcomes.push_back(std::to_string(record.line) + ":" + (error.empty() ? job.prompt : error));
  }
  ::close(fds[0]);
  REQUIRE(outcomes.size() == 3);
  CHECK(outcomes[0] == "1:before");
  CHECK(outcomes[1] == "2:line is longer than 64 bytes (skipped)");
  CHECK(outcomes[2] == "3:after");
}

TEST_CASE("loader: JSON lines refuse a quoted number and a repeated key") {
  auto error_of = [](const std::string& line) {
    loader::LineSource source{std::string(line)};
    loader::JsonLinesReader reader(source);
    loader::RawRecord record;
    loader::Job job;
    REQUIRE(reader.next(record));
    return loader::validate(record, job);
  };
  CHECK(error_of(R"({"prompt": "p", "duration": "5"})") == "duration must be a JSON number, got the string \"5\"");
  CHECK(error_of(R"({"prompt": "p", "priority": "3"})").find("priority must be a JSON number") == 0);
  CHECK(error_of(R"({"prompt": "p", "duration": 5})") == "");
  CHECK(error_of(R"({"prompt": "a", "prompt": "b"})") == "key \"prompt\" appears twice");
  CHECK(error_of(R"({"prompt": "a", "duration": 5, "duration": 10})") == "key \"duration\" appears twice");
  // CSV cells are untyped text: "5" there is fine.
  loader::LineSource csv{std::string("prompt,duration\np,5\n")};
  loader::CsvReader reader(csv);
  REQUIRE(reader.start().empty());
  loader::RawRecord record;
  loader::Job job;
  REQUIRE(reader.next(record));
  CHECK(loader::validate(record, job) == "");
  CHECK(job.duration == 5);
}

TEST_CASE("a signed webhook or a status answer whose url is not a string is malformed") {
  std::vector<config::Secret> secrets{config::Secret("s")};
  for (const char* url : {"42", "{\"href\":\"https://x/y.mp4\"}", "[\"https://x/y.mp4\"]", "true"}) {
    CAPTURE(url);
    const std::string body = std::string(R"({"id":"abc","status":"completed","url":)") + url + "}";
    auto decision = webhook::decide("POST", "/kq", webhook::sign("s", body), body, secrets);
    CHECK(decision.verdict == webhook::Verdict::bad_request);
    CHECK(decision.http_status == 400);
    CHECK(decision.reason == "url must be a string");
    http::ClientResult result;
    result.response.status = 200;
    result.response.body = std::string(R"({"id":"abc","status":"completed","url":)") + url + "}";
    auto status = api::parse_status(result);
    CHECK(status.outcome.outcome == api::OutcomeClass::transient);
    CHECK_FALSE(status.terminal);
  }
  const std::string good = R"({"id":"abc","status":"completed","url":"https://x/y.mp4"})";
  CHECK(webhook::decide("POST", "/kq", webhook::sign("s", good), good, secrets).verdict == webhook::Verdict::record);
}

TEST_CASE("dispatch_held: a change of what holds dispatch is logged once, not every flicker") {
  using dispatcher::Hold;
  using dispatcher::HoldLog;
  HoldLog log;
  auto t = HoldLog::Clock::time_point{} + std::chrono::hours(1);
  int held = 0, flowing = 0;
  auto claim = [&](Hold hold, std::chrono::seconds at) {
    auto line = log.on_claim(hold, t + at);
    if (line == HoldLog::Line::held) ++held;
    if (line == HoldLog::Line::flowing) ++flowing;
    return line;
  };
  // A 40-job run under a parallel limit of 1: held, a completion, held again, ...
  CHECK(claim(Hold::parallel, std::chrono::seconds(0)) == HoldLog::Line::held);
  for (int i = 1; i < 40; ++i) {
    claim(Hold::none, std::chrono::seconds(2 * i));
    claim(Hold::parallel, std::chrono::seconds(2 * i + 1));
  }
  CHECK(held == 1);
  CHECK(flowing == 0);
  // A different hold is a change worth a line.
  CHECK(claim(Hold::credit, std::chrono::seconds(100)) == HoldLog::Line::held);
  // It lasts; then dispatch flows again: one line, and the next hold is new again.
  CHECK(claim(Hold::none, std::chrono::seconds(400)) == HoldLog::Line::flowing);
  CHECK(claim(Hold::credit, std::chrono::seconds(401)) == HoldLog::Line::held);

  // Two limits taking turns: each is said once.
  HoldLog turns;
  int lines = 0;
  for (int i = 0; i < 20; ++i) {
    if (turns.on_claim(i % 2 ? Hold::rpm : Hold::parallel, t + std::chrono::seconds(i)) == HoldLog::Line::held) ++lines;
  }
  CHECK(lines == 2);
}

TEST_CASE("JSON log lines carry a time stamp and numbers as numbers, identifiers stay strings") {
  auto line = log::format(log::Level::info, "job_submitted",
                          {{"job", "42"}, {"remote_id", "123"}, {"credits", "300"}, {"seconds", "1.5"},
                           {"code", "007"}, {"instance", "9"}, {"message", "ok"}},
                          true, 1767225600123);
  auto parsed = boost::json::parse(line).as_object();
  CHECK(parsed.at("ts").as_string() == "2026-01-01T00:00:00.123Z");
  CHECK(parsed.at("job").as_int64() == 42);
  CHECK(parsed.at("credits").as_int64() == 300);
  CHECK(parsed.at("seconds").as_double() == doctest::Approx(1.5));
  CHECK(parsed.at("remote_id").as_string() == "123");
  CHECK(parsed.at("instance").as_string() == "9");
  CHECK(parsed.at("code").as_string() == "007");
  CHECK(parsed.at("message").as_string() == "ok");
  // key=value lines are unchanged (journald adds the time).
  CHECK(log::format(log::Level::info, "x", {{"n", "3"}}, false) == "<6>x n=3");
}

TEST_CASE("metrics: process figures, refunds and the publisher flag are exported") {
  ops::Metrics metrics;
  metrics.credit_spent().Increment(500);
  metrics.credit_refunded().Increment(200);
  auto text = metrics.serialize();
  for (const char* name : {"klingq_process_cpu_seconds_total ", "klingq_process_resident_memory_bytes ", "klingq_process_open_fds ",
                           "klingq_process_max_fds ", "klingq_process_start_time_seconds ", "klingq_metrics_publisher 0",
                           "klingq_credit_spent_total 500", "klingq_credit_refunded_total 200"}) {
    CAPTURE(name);
    CHECK(text.find(name) != std::string::npos);
  }
  // Plausible values: this process has stdin/stdout/stderr open and uses memory.
  auto value_of = [&](const std::string& name) {
    auto at = text.find("\n" + name + " ");
    REQUIRE(at != std::string::npos);
    return std::stod(text.substr(at + name.size() + 2));
  };
  CHECK(value_of("klingq_process_open_fds") >= 3);
  CHECK(value_of("klingq_process_resident_memory_bytes") > 1e6);
}
