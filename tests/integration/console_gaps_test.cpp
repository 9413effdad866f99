// The console's routes for the unlabelled batch (the reserved segment ":unlabelled") and
// its limit on wrong tokens, over real HTTP against a real klingqd, klingq-sim and
// PostgreSQL: every batch route with the unlabelled batch (its access rules, what it
// changes and records, the budget it cannot have), a real label spelled like the
// segment, and wrong tokens from one address, from several, and the limit lifting.
#include "support/console.hpp"
#include "support/http_call.hpp"
#include "support/process.hpp"
#include "support/stack.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>

#include <fstream>
#include <regex>

using namespace klingq::testing;
using namespace std::chrono_literals;

namespace {

const std::string op_token = "op-token-7c1f0e2b9a44";
const std::string viewer_token = "viewer-token-5d3a8e61";

const std::string as_op = bearer(op_token);
const std::string as_viewer = bearer(viewer_token);

// klingqd with the console on a free port and both token files; returns its address.
std::string start(Stack& stack, std::map<std::string, std::string> overrides = {}) {
  overrides["http.listen"] = "\"127.0.0.1:0\"";
  overrides["console.operator_token_file"] = "\"" + write_file(stack, "operators", op_token + "\n") + "\"";
  overrides["console.viewer_token_file"] = "\"" + write_file(stack, "viewers", viewer_token + "\n") + "\"";
  auto& daemon = stack.start_daemon(overrides);
  std::smatch m;
  const auto& out = daemon.stdout_text();
  REQUIRE(std::regex_search(out, m, std::regex("http listening on ([0-9.]+:[0-9]+)")));
  return m[1];
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

int retry_after(const HttpReply& r) {
  std::smatch m;
  if (!std::regex_search(r.headers, m, std::regex("Retry-After: ([0-9]+)"))) return -1;
  return std::stoi(m[1]);
}

}  // namespace

TEST_CASE("console api: the unlabelled batch is :unlabelled on every batch route, and labels stay reachable") {
  Stack stack({"--plan", "starter", "--time-scale", "60"});
  const auto address = start(stack);
  auto post = [&](const std::string& target, const std::string& payload, const std::string& headers) {
    return http_call(address, "POST", target, payload, headers);
  };
  auto events = [&] { return stack.scalar("SELECT count(*) FROM klingq.operator_events"); };

  // No unlabelled job yet: a 404 that says so, as for an unknown label.
  auto none = post("/api/batches/:unlabelled/pause", "{}", as_op);
  CHECK(none.status == 404);
  CHECK(error_of(none).find("no unlabelled jobs") != std::string::npos);
  CHECK(events() == 0);

  stack.exec(
      "INSERT INTO klingq.jobs (prompt, run_after) SELECT 'unlabelled later ' || g, now() + interval '1 day' "
      "FROM generate_series(1, 3) g;"
      "INSERT INTO klingq.jobs (prompt, state, attempts) VALUES ('an unlabelled failure', 'failed', 2);"
      "INSERT INTO klingq.jobs (prompt, batch, state, attempts) VALUES ('a labelled failure', 'b1', 'failed', 2);"
      "INSERT INTO klingq.jobs (prompt, batch, run_after) VALUES ('a labelled job for later', 'b1', now() + interval '1 day')");

  // The access rules of every batch route hold for it.
  for (const char* action : {"pause", "resume", "retry-failed", "cancel", "budget"}) {
    const std::string route = std::string("/api/batches/:unlabelled/") + action;
    CAPTURE(route);
    CHECK(post(route, "{}", "").status == 401);
    CHECK(post(route, "{}", as_viewer).status == 403);
  }
  CHECK(events() == 0);

  // Pause and resume: the row of batch NULL in klingq.batches, as `klingq batch pause --unlabelled`.
  auto paused = post("/api/batches/:unlabelled/pause", R"({"reason": "sorting them out"})", as_op);
  REQUIRE(paused.status == 200);
  CHECK(body(paused).at("batch").is_null());
  CHECK(body(paused).at("paused") == true);
  CHECK(stack.text("SELECT paused::text || '|' || paused_reason FROM klingq.batches WHERE batch IS NULL") ==
        "true|sorting them out");
  CHECK(stack.text("SELECT paused::text FROM klingq.batches WHERE batch = 'b1'") == "false");
  CHECK(stack.text("SELECT actor || '|' || action || '|' || coalesce(batch, 'NULL') || '|' || reason "
                   "FROM klingq.operator_events ORDER BY id DESC LIMIT 1") ==
        "console:operator#1|batch_pause|NULL|sorting them out");
  // The overview's unlabelled row says so.
  REQUIRE(Stack::wait_until([&] {
    auto o = body(http_call(address, "GET", "/api/overview", "", as_viewer));
    for (const auto& b : o.at("batches").as_array()) {
      if (b.at("batch").is_null()) return b.at("paused") == true && b.at("label") == "(unlabelled)";
    }
    return false;
  }, 10s));
  REQUIRE(post("/api/batches/:unlabelled/resume", "", as_op).status == 200);
  CHECK(stack.text("SELECT paused::text FROM klingq.batches WHERE batch IS NULL") == "false");

  // Retry failed: the unlabelled failure only, not b1's.
  auto retried = post("/api/batches/:unlabelled/retry-failed", R"({"reason": "prompts fixed"})", as_op);
  REQUIRE(retried.status == 200);
  CHECK(body(retried).at("count").as_int64() == 1);
  CHECK(body(retried).at("batch").is_null());
  CHECK(stack.text("SELECT state::text FROM klingq.jobs WHERE prompt = 'an unlabelled failure'") != "failed");
  CHECK(stack.text("SELECT state::text FROM klingq.jobs WHERE prompt = 'a labelled failure'") == "failed");
  CHECK(stack.text("SELECT action || '|' || coalesce(batch, 'NULL') || '|' || (detail->>'unlabelled') || '|' || "
                   "(detail->>'count') FROM klingq.operator_events ORDER BY id DESC LIMIT 1") ==
        "retry_failed|NULL|true|1");

  // Cancel: the queued unlabelled jobs, not b1's queued one.
  auto cancelled = post("/api/batches/:unlabelled/cancel", "{}", as_op);
  REQUIRE(cancelled.status == 200);
  CHECK(body(cancelled).at("count").as_int64() >= 3);  // and the retried one unless already claimed
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE prompt LIKE 'unlabelled later %' AND state = 'cancelled'") == 3);
  CHECK(stack.text("SELECT state::text FROM klingq.jobs WHERE prompt = 'a labelled job for later'") == "queued");
  CHECK(stack.text("SELECT action || '|' || coalesce(batch, 'NULL') || '|' || (detail->>'unlabelled') "
                   "FROM klingq.operator_events ORDER BY id DESC LIMIT 1") == "batch_cancel|NULL|true");

  // A budget needs a label (schema 012): refused, nothing changed or recorded.
  const auto before = events();
  for (const std::string& payload : {std::string(R"({"budget": 100})"), std::string(R"({"budget": null})")}) {
    CAPTURE(payload);
    auto refused = post("/api/batches/:unlabelled/budget", payload, as_op);
    CHECK(refused.status == 400);
    CHECK(error_of(refused).find("budgets need a batch label") != std::string::npos);
  }
  CHECK(stack.text("SELECT coalesce(budget::text, 'none') FROM klingq.batches WHERE batch IS NULL") == "none");
  CHECK(events() == before);

  // Percent-encoded labels still name labels: "b%31" is b1.
  REQUIRE(post("/api/batches/b%31/pause", "{}", as_op).status == 200);
  CHECK(stack.text("SELECT paused::text FROM klingq.batches WHERE batch = 'b1'") == "true");
  CHECK(stack.text("SELECT paused::text FROM klingq.batches WHERE batch IS NULL") == "false");

  // A real label spelled like the segment: reached only percent-encoded, and while it
  // exists the raw segment is refused rather than guessed at.
  stack.exec("INSERT INTO klingq.jobs (prompt, batch, run_after) VALUES ('labelled like the segment', ':unlabelled', "
             "now() + interval '1 day')");
  const auto before_collision = events();
  auto ambiguous = post("/api/batches/:unlabelled/pause", "{}", as_op);
  CHECK(ambiguous.status == 409);
  CHECK(error_of(ambiguous).find("%3Aunlabelled") != std::string::npos);
  CHECK(events() == before_collision);
  CHECK(stack.text("SELECT paused::text FROM klingq.batches WHERE batch IS NULL") == "false");
  REQUIRE(post("/api/batches/%3Aunlabelled/pause", "{}", as_op).status == 200);
  CHECK(stack.text("SELECT paused::text FROM klingq.batches WHERE batch = ':unlabelled'") == "true");
  CHECK(stack.text("SELECT paused::text FROM klingq.batches WHERE batch IS NULL") == "false");
  REQUIRE(post("/api/batches/%3aunlabelled/resume", "{}", as_op).status == 200);
  CHECK(stack.text("SELECT paused::text FROM klingq.batches WHERE batch = ':unlabelled'") == "false");
  REQUIRE(post("/api/batches/%3Aunlabelled/budget", R"({"budget": 700})", as_op).status == 200);
  CHECK(stack.scalar("SELECT budget FROM klingq.batches WHERE batch = ':unlabelled'") == 700);
}

TEST_CASE("console api: wrong tokens are limited per address and overall, and the limit lifts as it drains") {
  Stack stack({"--plan", "starter", "--time-scale", "60"});
  // 3 wrong tokens per address and 5 overall; a full bucket drains in 40 s (one
  // address's failure in 13.3 s, an overall one in 8 s: room for a slow machine).
  const auto address = start(stack, {{"console.login_failures_per_address", "3"},
                                     {"console.login_failures_overall", "5"},
                                     {"console.login_failure_window_seconds", "40"}});
  auto from = [&](const std::string& source, const std::string& method, const std::string& target,
                  const std::string& payload, const std::string& headers) {
    return http_call_from(source, address, method, target, payload, headers);
  };
  const std::string good_login = R"({"token": ")" + op_token + R"("})";

  // A session from before the attack.
  auto login = from("127.0.0.1", "POST", "/login", good_login, "");
  REQUIRE(login.status == 200);
  std::smatch m;
  REQUIRE(std::regex_search(login.headers, m, std::regex("Set-Cookie: klingq_session=([^;\r\n]+)")));
  const std::string cookie = "Cookie: klingq_session=" + std::string(m[1]) + "\r\n";

  // Three wrong tokens from one address, then its token checks are refused, the right one too.
  for (int i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(from("127.0.0.1", "POST", "/login", R"({"token": "guess-number-)" + std::to_string(i) + R"("})", "").status ==
          401);
  }
  auto limited = from("127.0.0.1", "POST", "/login", good_login, "");
  CHECK(limited.status == 429);
  CHECK(error_of(limited).find("too many wrong tokens from this address") != std::string::npos);
  CHECK(retry_after(limited) >= 1);
  CHECK(retry_after(limited) <= 40);
  auto limited_bearer = from("127.0.0.1", "GET", "/api/overview", "", as_op);
  CHECK(limited_bearer.status == 429);
  CHECK(retry_after(limited_bearer) >= 1);
  // Its session still works; another address's right token works.
  CHECK(from("127.0.0.1", "GET", "/api/overview", "", cookie).status == 200);
  CHECK(from("127.0.0.2", "GET", "/api/overview", "", as_op).status == 200);

  // Two wrong bearer tokens from another address fill the overall bucket: now every
  // address is refused, even one that never failed; sessions go on.
  CHECK(from("127.0.0.2", "GET", "/api/overview", "", bearer("guess-number-3")).status == 401);
  CHECK(from("127.0.0.2", "POST", "/api/pause", "{}", bearer("guess-number-4")).status == 401);
  auto overall = from("127.0.0.3", "GET", "/api/overview", "", as_op);
  CHECK(overall.status == 429);
  CHECK(error_of(overall).find("from all addresses") != std::string::npos);
  CHECK(from("127.0.0.3", "POST", "/login", good_login, "").status == 429);
  CHECK(from("127.0.0.1", "GET", "/api/overview", "", cookie).status == 200);
  CHECK(stack.scalar("SELECT count(*) FROM klingq.account WHERE paused") == 0);

  // Each burst was logged once, with the address and never a token.
  REQUIRE(Stack::wait_until([&] {
    return stack.daemons[0]->stderr_text().find("scope=overall") != std::string::npos;
  }, 5s));
  const auto& log = stack.daemons[0]->stderr_text();
  CHECK(count_of(log, "console_login_limited") == 2);
  CHECK(count_of(log, "console_login_limited scope=address address=127.0.0.1") == 1);
  for (const std::string& secret : {op_token, viewer_token, std::string("guess-number-")}) {
    CAPTURE(secret);
    CHECK(log.find(secret) == std::string::npos);
    CHECK(stack.daemons[0]->stdout_text().find(secret) == std::string::npos);
  }

  // The limit lifts as the buckets drain: the right token from the first address works again.
  REQUIRE(Stack::wait_until([&] { return from("127.0.0.1", "GET", "/api/overview", "", as_op).status == 200; }, 60s));
  CHECK(from("127.0.0.1", "POST", "/login", good_login, "").status == 200);
  CHECK(from("127.0.0.3", "GET", "/api/overview", "", as_op).status == 200);
  CHECK(count_of(stack.daemons[0]->stderr_text(), "console_login_limited") == 2);
}

TEST_CASE("console api: a bad value for the wrong-token limit stops klingqd at start, naming the key") {
  Stack stack({"--plan", "starter"});
  for (const auto& item : std::vector<std::pair<std::string, std::string>>{
           {"console.login_failures_per_address", "0"},
           {"console.login_failures_overall", "-5"},
           {"console.login_failure_window_seconds", "0"},
           {"console.login_failure_window_seconds", "\"soon\""},
           {"console.search_scan_rows", "0"}}) {
    const std::string key = item.first, value = item.second;
    CAPTURE(key);
    CAPTURE(value);
    auto path = stack.write_config({{"http.listen", "\"127.0.0.1:0\""}, {key, value}});
    auto result = run({KLINGQD_BINARY, "--config", path, "--check-config"}, {{"KLINGQ_API_KEY", sim_api_key}});
    CHECK(result.exit_code == 2);
    CHECK((result.err + result.out).find(key) != std::string::npos);
  }
}

TEST_CASE("console api: a prompt search reads a bounded range of ids per request and goes on where it stopped") {
  Stack stack({"--plan", "starter", "--time-scale", "60"});
  // Ten finished jobs; the text is in the 2nd and the 9th; the 1st has a remote id.
  stack.exec(
      "INSERT INTO klingq.jobs (prompt, state) SELECT CASE WHEN g IN (2, 9) THEN 'a Needle ' ELSE 'hay ' END || g, "
      "'cancelled' FROM generate_series(1, 10) g ORDER BY g;"
      "UPDATE klingq.jobs SET state = 'completed', remote_id = 'r-needle-x', credit_cost = 100, submitted_at = now(), "
      "completed_at = now(), url = 'https://cdn.example/1.mp4' WHERE prompt = 'hay 1'");
  const auto address = start(stack, {{"console.search_scan_rows", "3"}});
  const auto lowest = stack.scalar("SELECT min(id) FROM klingq.jobs");
  const auto highest = stack.scalar("SELECT max(id) FROM klingq.jobs");
  auto id_of = [&](const std::string& prompt) {
    return stack.scalar("SELECT id FROM klingq.jobs WHERE prompt = '" + prompt + "'");
  };

  std::vector<std::int64_t> found;
  std::vector<std::pair<std::int64_t, std::int64_t>> ranges;
  std::string after;
  for (int page = 0; page < 10; ++page) {
    auto r = http_call(address, "GET", "/api/jobs?q=needle" + after, "", as_viewer);
    REQUIRE(r.status == 200);
    auto v = body(r);
    for (const auto& j : v.at("jobs").as_array()) found.push_back(j.at("id").as_int64());
    const auto& search = v.at("search");
    ranges.emplace_back(search.at("from_id").as_int64(), search.at("to_id").as_int64());
    CHECK(ranges.back().first - ranges.back().second + 1 <= 3);  // never more than 3 ids read
    CHECK(search.at("complete") == v.at("next_after").is_null());
    if (v.at("next_after").is_null()) break;
    after = "&after=" + std::to_string(v.at("next_after").as_int64());
  }
  // Every id searched once, newest first, in 4 requests; both matches found, in order.
  REQUIRE(ranges.size() == 4);
  CHECK(ranges.front().first == highest);
  CHECK(ranges.back().second == lowest);
  for (std::size_t i = 1; i < ranges.size(); ++i) CHECK(ranges[i].first == ranges[i - 1].second - 1);
  CHECK(found == std::vector<std::int64_t>{id_of("a Needle 9"), id_of("a Needle 2")});

  // The first page also finds a job by its remote id, wherever its id is.
  auto by_remote = body(http_call(address, "GET", "/api/jobs?q=r-needle-x", "", as_viewer));
  REQUIRE(by_remote.at("jobs").as_array().size() == 1);
  CHECK(by_remote.at("jobs").as_array()[0].at("id").as_int64() == id_of("hay 1"));
  // The state filter applies within the range too.
  auto completed = body(http_call(address, "GET", "/api/jobs?q=hay&state=completed&after=" + std::to_string(lowest + 3),
                                  "", as_viewer));
  REQUIRE(completed.at("jobs").as_array().size() == 1);
  CHECK(completed.at("search").at("complete") == true);
  // A page filled by matches goes on after its last match (limit 1 of the hay in 8, 10).
  auto full = body(http_call(address, "GET", "/api/jobs?q=hay&limit=1", "", as_viewer));
  REQUIRE(full.at("jobs").as_array().size() == 1);
  CHECK(full.at("jobs").as_array()[0].at("id").as_int64() == highest);
  CHECK(full.at("next_after").as_int64() == highest);
  // Without a text the list is not bounded: one page holds them all.
  auto all = body(http_call(address, "GET", "/api/jobs", "", as_viewer));
  CHECK(all.at("jobs").as_array().size() == 10);
  CHECK_FALSE(all.as_object().contains("search"));
}
