// The operator console's JSON API over real HTTP against a real klingqd, klingq-sim and
// PostgreSQL: every route, its access rules (bearer tokens, the login cookie and its
// CSRF token, viewers and operators), its bad inputs (each a 4xx JSON error that changes
// nothing), that every action is recorded with who and why, and that no secret is in a
// response.
#include "support/console.hpp"
#include "support/http_call.hpp"
#include "support/stack.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>

#include <csignal>
#include <fstream>
#include <regex>

using namespace klingq::testing;
using namespace std::chrono_literals;

namespace {

const std::string op_token = "op-token-4b1d9e0c7a6f";
const std::string viewer_token = "viewer-token-93c2e8d1";

struct Console {
  Stack& stack;
  std::string address;

  HttpReply get(const std::string& target, const std::string& headers = "") const {
    return http_call(address, "GET", target, "", headers);
  }
  HttpReply post(const std::string& target, const std::string& body = "", const std::string& headers = "") const {
    return http_call(address, "POST", target, body, headers);
  }
};

const std::string as_op = bearer(op_token);
const std::string as_viewer = bearer(viewer_token);

// klingqd with the console on a free port and both token files.
Console start(Stack& stack, bool viewer_file = true, std::map<std::string, std::string> overrides = {}) {
  overrides["http.listen"] = "\"127.0.0.1:0\"";
  overrides["console.operator_token_file"] = "\"" + write_file(stack, "operators", "# ops\n" + op_token + "\n") + "\"";
  if (viewer_file) overrides["console.viewer_token_file"] = "\"" + write_file(stack, "viewers", viewer_token + "\n") + "\"";
  auto& daemon = stack.start_daemon(overrides);
  std::smatch m;
  const auto& out = daemon.stdout_text();
  REQUIRE(std::regex_search(out, m, std::regex("http listening on ([0-9.]+:[0-9]+)")));
  return Console{stack, m[1]};
}

std::int64_t id_of(Stack& stack, const std::string& where) {
  return stack.scalar("SELECT id FROM klingq.jobs WHERE " + where + " ORDER BY id LIMIT 1");
}

// Rows the daemon leaves alone: finished ones, and queued ones not due for a day.
void seed(Stack& stack) {
  stack.exec(
      "INSERT INTO klingq.jobs (prompt, batch, run_after) SELECT 'later ' || g, 'b1', now() + interval '1 day' "
      "FROM generate_series(1, 5) g;"
      "INSERT INTO klingq.jobs (prompt, batch, state, attempts, last_error) VALUES "
      "('a failed cat', 'b1', 'failed', 2, '{\"last\": {\"class\": \"remote_failed\", \"message\": \"generation failed\"}}'),"
      "('a cancelled dog', 'b2', 'cancelled', 0, NULL);"
      "INSERT INTO klingq.jobs (prompt, batch, state, remote_id, url, credit_cost, submitted_at, completed_at) VALUES "
      "('a finished 100% owl_x', 'b2', 'completed', 'r-done', 'https://cdn.example/v.mp4', 100, now(), now())");
}

}  // namespace

TEST_CASE("console api: reads follow the viewer rule, actions need an operator") {
  Stack stack({"--plan", "starter", "--time-scale", "60"});
  seed(stack);
  auto c = start(stack);

  // With a viewer file, every read needs a token.
  for (const char* route : {"/api/overview", "/api/jobs", "/api/jobs/1"}) {
    CAPTURE(route);
    auto none = c.get(route);
    CHECK(none.status == 401);
    CHECK(none.headers.find("WWW-Authenticate: Bearer") != std::string::npos);
    CHECK(error_of(none).find("token") != std::string::npos);
    CHECK(c.get(route, bearer("not-a-token-at-all")).status == 401);
    CHECK(c.get(route, as_viewer).status != 401);
    CHECK(c.get(route, as_op).status != 401);
  }
  // The page itself loads without a token (it asks for one).
  auto page = c.get("/");
  CHECK(page.status == 200);
  CHECK(page.headers.find("text/html") != std::string::npos);
  CHECK(page.headers.find("Content-Security-Policy") != std::string::npos);
  CHECK(c.get("/console.js").status == 200);
  CHECK(c.get("/console.css").status == 200);
  CHECK(c.get("/metrics").status == 200);  // the ops endpoint still answers beside it
  CHECK(c.get("/healthz").status == 200);

  // Actions: none 401, viewer 403, operator 200.
  for (const char* route : {"/api/pause", "/api/resume", "/api/jobs/1/retry", "/api/jobs/1/cancel",
                            "/api/batches/b1/retry-failed", "/api/batches/b1/cancel", "/api/batches/b1/budget",
                            "/api/batches/b1/pause", "/api/batches/b1/resume"}) {
    CAPTURE(route);
    CHECK(c.post(route, "{}").status == 401);
    auto viewer = c.post(route, "{}", as_viewer);
    CHECK(viewer.status == 403);
    CHECK(error_of(viewer).find("viewer") != std::string::npos);
    CHECK(c.post(route, "{}", bearer("wrong-token-0000000000")).status == 401);
  }
  // Nothing of that changed anything.
  CHECK(stack.scalar("SELECT count(*) FROM klingq.operator_events") == 0);
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'cancelled'") == 1);
  CHECK(stack.scalar("SELECT count(*) FROM klingq.account WHERE paused") == 0);

  auto paused = c.post("/api/pause", R"({"reason": "checking the invoice"})", as_op);
  REQUIRE(paused.status == 200);
  CHECK(body(paused).at("paused") == true);
  CHECK(body(paused).at("by") == "console:operator#1");
  CHECK(stack.text("SELECT paused_reason FROM klingq.account") == "checking the invoice");
  CHECK(stack.text("SELECT actor || ' ' || action || ' ' || reason FROM klingq.operator_events") ==
        "console:operator#1 pause checking the invoice");
  REQUIRE(Stack::wait_until([&] {
    return stack.daemons[0]->stderr_text().find("console_action") != std::string::npos;
  }, 5s));
  auto& log = stack.daemons[0]->stderr_text();
  CHECK(log.find("operator#1") != std::string::npos);
  CHECK(log.find("checking the invoice") != std::string::npos);
  auto overview = c.get("/api/overview", as_viewer);
  REQUIRE(overview.status == 200);
  CHECK(body(overview).at("paused") == true);
  CHECK(body(overview).at("hold").at("by") == "paused");
  REQUIRE(c.post("/api/resume", "", as_op).status == 200);
  CHECK(stack.scalar("SELECT count(*) FROM klingq.account WHERE paused") == 0);

  // No secret in any response or log.
  std::string everything = c.get("/api/overview", as_op).body + c.get("/api/jobs", as_op).body +
                           c.get("/api/session", as_op).body + c.get("/").body + c.get("/console.js").body;
  for (const auto& secret : {op_token, viewer_token, std::string(sim_api_key), std::string(sim_webhook_secret)}) {
    CAPTURE(secret);
    CHECK(everything.find(secret) == std::string::npos);
    CHECK(stack.daemons[0]->stderr_text().find(secret) == std::string::npos);
    CHECK(stack.daemons[0]->stdout_text().find(secret) == std::string::npos);
  }
}

TEST_CASE("console api: without a viewer file reads are open and actions still need an operator") {
  Stack stack({"--plan", "starter", "--time-scale", "60"});
  auto c = start(stack, false);
  CHECK(c.get("/api/overview").status == 200);
  CHECK(c.get("/api/jobs").status == 200);
  auto session = body(c.get("/api/session"));
  CHECK(session.at("role") == "none");
  CHECK(session.at("reads_need_token") == false);
  CHECK(c.post("/api/pause", "{}").status == 401);
  CHECK(c.get("/api/overview", bearer("wrong-token-0000000000")).status == 401);
}

TEST_CASE("console api: the login cookie is HttpOnly and SameSite=Strict, and its actions need the CSRF token") {
  Stack stack({"--plan", "starter", "--time-scale", "60"});
  auto c = start(stack);
  CHECK(c.post("/login", R"({"token": "nope-nope-nope-nope"})").status == 401);
  CHECK(c.post("/login", R"({})").status == 400);
  CHECK(c.post("/login", R"({"token": 3, "x": 1})").status == 400);
  auto login = c.post("/login", R"({"token": ")" + op_token + R"("})");
  REQUIRE(login.status == 200);
  std::smatch m;
  REQUIRE(std::regex_search(login.headers, m, std::regex("Set-Cookie: klingq_session=([^;\r\n]+)([^\r\n]*)")));
  const std::string cookie = "Cookie: klingq_session=" + std::string(m[1]) + "\r\n";
  const std::string attributes = m[2];
  CHECK(attributes.find("HttpOnly") != std::string::npos);
  CHECK(attributes.find("SameSite=Strict") != std::string::npos);
  CHECK(std::string(m[1]).find(op_token) == std::string::npos);
  const std::string csrf(body(login).at("csrf").as_string());
  CHECK(body(c.get("/api/session", cookie)).at("csrf") == boost::json::value(csrf));
  CHECK(body(c.get("/api/session", cookie)).at("role") == "operator");

  // Reads work with the cookie; actions need the CSRF header too.
  CHECK(c.get("/api/overview", cookie).status == 200);
  auto no_csrf = c.post("/api/pause", "{}", cookie);
  CHECK(no_csrf.status == 403);
  CHECK(error_of(no_csrf).find("CSRF") != std::string::npos);
  CHECK(c.post("/api/pause", "{}", cookie + "X-CSRF-Token: " + std::string(64, 'a') + "\r\n").status == 403);
  CHECK(stack.scalar("SELECT count(*) FROM klingq.account WHERE paused") == 0);
  CHECK(c.post("/api/pause", R"({"reason": "from the page"})", cookie + "X-CSRF-Token: " + csrf + "\r\n").status == 200);
  CHECK(stack.scalar("SELECT count(*) FROM klingq.account WHERE paused") == 1);

  // A forged cookie is nobody; a viewer's session cannot act even with its CSRF token.
  CHECK(c.get("/api/overview", "Cookie: klingq_session=operator.1.9999999999.00\r\n").status == 401);
  auto viewer_login = c.post("/login", R"({"token": ")" + viewer_token + R"("})");
  REQUIRE(viewer_login.status == 200);
  REQUIRE(std::regex_search(viewer_login.headers, m, std::regex("Set-Cookie: klingq_session=([^;\r\n]+)")));
  const std::string viewer_cookie = "Cookie: klingq_session=" + std::string(m[1]) + "\r\n";
  const std::string viewer_csrf(body(viewer_login).at("csrf").as_string());
  CHECK(c.post("/api/resume", "{}", viewer_cookie + "X-CSRF-Token: " + viewer_csrf + "\r\n").status == 403);
  // Logging out clears the cookie.
  auto out = c.post("/logout");
  CHECK(out.headers.find("Max-Age=0") != std::string::npos);
}

TEST_CASE("console api: the job list filters and pages by id, a job shows its timeline") {
  Stack stack({"--plan", "starter", "--time-scale", "60"});
  seed(stack);
  auto c = start(stack);
  auto all = body(c.get("/api/jobs", as_viewer));
  auto jobs = all.at("jobs").as_array();
  REQUIRE(jobs.size() == 8);
  CHECK(jobs[0].at("id").as_int64() > jobs[7].at("id").as_int64());  // newest first
  CHECK(all.at("next_after").is_null());

  auto failed = body(c.get("/api/jobs?state=failed", as_viewer)).at("jobs").as_array();
  REQUIRE(failed.size() == 1);
  CHECK(failed[0].at("error_class") == "remote_failed");
  CHECK(body(c.get("/api/jobs?batch=b2", as_viewer)).at("jobs").as_array().size() == 2);
  CHECK(body(c.get("/api/jobs?batch=b1&state=queued", as_viewer)).at("jobs").as_array().size() == 5);
  CHECK(body(c.get("/api/jobs?q=CAT", as_viewer)).at("jobs").as_array().size() == 1);
  // % and _ are taken literally, not as patterns.
  CHECK(body(c.get("/api/jobs?q=100%25", as_viewer)).at("jobs").as_array().size() == 1);
  CHECK(body(c.get("/api/jobs?q=%25", as_viewer)).at("jobs").as_array().size() == 1);
  CHECK(body(c.get("/api/jobs?q=owl_x", as_viewer)).at("jobs").as_array().size() == 1);
  CHECK(body(c.get("/api/jobs?q=owl%5Fx", as_viewer)).at("jobs").as_array().size() == 1);
  CHECK(body(c.get("/api/jobs?q=r-done", as_viewer)).at("jobs").as_array().size() == 1);

  // Keyset pages of 3 walk every job once.
  std::vector<std::int64_t> seen;
  std::string after;
  for (int page = 0; page < 5; ++page) {
    auto r = body(c.get("/api/jobs?limit=3" + after, as_viewer));
    for (const auto& j : r.at("jobs").as_array()) seen.push_back(j.at("id").as_int64());
    if (r.at("next_after").is_null()) break;
    after = "&after=" + std::to_string(r.at("next_after").as_int64());
  }
  CHECK(seen.size() == 8);
  CHECK(std::is_sorted(seen.rbegin(), seen.rend()));

  // Bad filters: 400 naming the problem.
  CHECK(error_of(c.get("/api/jobs?state=exploded", as_viewer)).find("bad state") != std::string::npos);
  CHECK(c.get("/api/jobs?after=-1", as_viewer).status == 400);
  CHECK(c.get("/api/jobs?after=abc", as_viewer).status == 400);
  CHECK(c.get("/api/jobs?limit=0", as_viewer).status == 400);
  CHECK(c.get("/api/jobs?limit=501", as_viewer).status == 400);
  CHECK(error_of(c.get("/api/jobs?colour=red", as_viewer)).find("colour") != std::string::npos);
  CHECK(c.get("/api/jobs?batch=" + std::string(201, 'x'), as_viewer).status == 400);
  CHECK(c.get("/api/jobs?q=%zz", as_viewer).status == 400);

  // One job: its fields and timeline.
  const auto failed_id = id_of(stack, "state = 'failed'");
  auto one = c.get("/api/jobs/" + std::to_string(failed_id), as_viewer);
  REQUIRE(one.status == 200);
  CHECK(body(one).at("job").at("state") == "failed");
  CHECK(body(one).at("job").at("last_error").at("last").at("class") == "remote_failed");
  CHECK(body(one).at("timeline").as_array().size() >= 1);
  const auto done_id = id_of(stack, "state = 'completed'");
  CHECK(body(c.get("/api/jobs/" + std::to_string(done_id), as_viewer)).at("job").at("url") == "https://cdn.example/v.mp4");
  CHECK(error_of(c.get("/api/jobs/999999", as_viewer)).find("no such job") != std::string::npos);
  CHECK(c.get("/api/jobs/999999", as_viewer).status == 404);
  CHECK(c.get("/api/jobs/abc", as_viewer).status == 400);
  CHECK(c.get("/api/jobs/0", as_viewer).status == 400);
  CHECK(c.get("/api/nothing", as_viewer).status == 404);
  CHECK(c.post("/api/overview", "{}", as_op).status == 405);
  CHECK(c.get("/api/pause", as_op).status == 405);
}

TEST_CASE("console api: retry, cancel and budgets act like the CLI, are recorded, and refuse bad input unchanged") {
  Stack stack({"--plan", "starter", "--time-scale", "60"});
  seed(stack);
  auto c = start(stack);
  const auto failed_id = id_of(stack, "state = 'failed'");
  const auto queued_id = id_of(stack, "state = 'queued'");
  const auto done_id = id_of(stack, "state = 'completed'");
  auto events = [&] { return stack.scalar("SELECT count(*) FROM klingq.operator_events"); };

  // Refused: a completed job cannot be retried or cancelled; nothing is recorded.
  auto refused = c.post("/api/jobs/" + std::to_string(done_id) + "/retry", "{}", as_op);
  CHECK(refused.status == 409);
  CHECK(error_of(refused).find("only failed or cancelled") != std::string::npos);
  CHECK(c.post("/api/jobs/" + std::to_string(done_id) + "/cancel", "{}", as_op).status == 409);
  CHECK(c.post("/api/jobs/999999/cancel", "{}", as_op).status == 404);
  CHECK(c.post("/api/jobs/x/cancel", "{}", as_op).status == 400);
  CHECK(events() == 0);

  // Bad bodies: 400 and nothing changes.
  for (const std::string& bad : std::vector<std::string>{"{", "[1]", "\"text\"", R"({"reason": 5})", R"({"why": "x"})",
                                R"({"reason": ")" + std::string(600, 'r') + "\"}"}) {
    CAPTURE(bad);
    auto r = c.post("/api/jobs/" + std::to_string(queued_id) + "/cancel", bad, as_op);
    CHECK(r.status == 400);
    CHECK_FALSE(error_of(r).empty());
  }
  auto big = c.post("/api/pause", R"({"reason": ")" + std::string(20000, 'x') + "\"}", as_op);
  CHECK(big.status == 413);
  CHECK(body(big).as_object().contains("error"));
  CHECK(stack.text("SELECT state::text FROM klingq.jobs WHERE id = " + std::to_string(queued_id)) == "queued");
  CHECK(stack.scalar("SELECT count(*) FROM klingq.account WHERE paused") == 0);
  CHECK(events() == 0);

  // Cancel a queued job, with a reason.
  auto cancelled = c.post("/api/jobs/" + std::to_string(queued_id) + "/cancel", R"({"reason": "duplicate"})", as_op);
  REQUIRE(cancelled.status == 200);
  CHECK(body(cancelled).at("cancelled").as_array().size() == 1);
  CHECK(stack.text("SELECT state::text FROM klingq.jobs WHERE id = " + std::to_string(queued_id)) == "cancelled");
  CHECK(stack.text("SELECT actor || '|' || action || '|' || reason FROM klingq.operator_events WHERE job_id = " +
                   std::to_string(queued_id)) == "console:operator#1|cancel|duplicate");
  // Its page shows who did it.
  auto timeline = body(c.get("/api/jobs/" + std::to_string(queued_id), as_op)).at("timeline").as_array();
  bool shown = false;
  for (const auto& e : timeline) shown = shown || (e.at("kind") == "operator" && e.at("actor") == "console:operator#1");
  CHECK(shown);

  // Batches: a bad label, an unknown batch, then the real ones.
  CHECK(c.post("/api/batches/" + std::string(201, 'x') + "/cancel", "{}", as_op).status == 400);
  CHECK(c.post("/api/batches/%zz/cancel", "{}", as_op).status == 400);
  auto unknown = c.post("/api/batches/nope/cancel", "{}", as_op);
  CHECK(unknown.status == 404);
  CHECK(error_of(unknown).find("no jobs in batch") != std::string::npos);
  CHECK(c.post("/api/batches/nope/retry-failed", "{}", as_op).status == 404);
  const auto before = events();
  auto batch_cancel = c.post("/api/batches/b1/cancel", R"({"reason": "wrong prompts"})", as_op);
  REQUIRE(batch_cancel.status == 200);
  CHECK(body(batch_cancel).at("count").as_int64() == 4);  // the 4 queued left of b1
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE batch = 'b1' AND state = 'queued'") == 0);
  CHECK(events() == before + 1);
  CHECK(stack.text("SELECT action || '|' || batch || '|' || (detail->>'count') FROM klingq.operator_events "
                   "ORDER BY id DESC LIMIT 1") == "batch_cancel|b1|4");
  auto retry_failed = c.post("/api/batches/b2/retry-failed", "{}", as_op);
  REQUIRE(retry_failed.status == 200);
  CHECK(body(retry_failed).at("count").as_int64() == 0);  // b2 has a cancelled job, no failed one

  // Retry the failed job (after the batch cancel, which would take it): queued again.
  auto retried = c.post("/api/jobs/" + std::to_string(failed_id) + "/retry", "", as_op);
  REQUIRE(retried.status == 200);
  CHECK(stack.text("SELECT state::text FROM klingq.jobs WHERE id = " + std::to_string(failed_id)) != "failed");

  // Batch pause and resume (klingq.batches), as `klingq batch pause|resume`.
  CHECK(c.post("/api/batches/nope/pause", "{}", as_op).status == 404);
  CHECK(c.post("/api/batches/b2/pause", "{}", as_viewer).status == 403);
  REQUIRE(c.post("/api/batches/b2/pause", R"({"reason": "client review"})", as_op).status == 200);
  CHECK(stack.text("SELECT paused::text || '|' || paused_reason FROM klingq.batches WHERE batch = 'b2'") ==
        "true|client review");
  CHECK(stack.text("SELECT action || '|' || batch FROM klingq.operator_events ORDER BY id DESC LIMIT 1") ==
        "batch_pause|b2");
  bool shown_paused = false;
  const auto overview = body(c.get("/api/overview", as_op));
  for (const auto& b : overview.at("batches").as_array()) {
    if (b.at("batch") == "b2") shown_paused = b.at("paused") == true && b.at("paused_reason") == "client review";
  }
  CHECK(shown_paused);
  REQUIRE(c.post("/api/batches/b2/resume", "", as_op).status == 200);
  CHECK(stack.text("SELECT paused::text FROM klingq.batches WHERE batch = 'b2'") == "false");

  // A label with a space and a slash, percent-encoded in the path.
  CHECK(c.post("/api/batches/spring%20%2F%20summer/budget", R"({"budget": 500})", as_op).status == 200);
  CHECK(stack.scalar("SELECT budget FROM klingq.batch_budgets WHERE batch = 'spring / summer'") == 500);
  for (const std::string& bad : std::vector<std::string>{R"({})", R"({"budget": -1})", R"({"budget": "lots"})", R"({"budget": 1.5})"}) {
    CAPTURE(bad);
    CHECK(c.post("/api/batches/b2/budget", bad, as_op).status == 400);
  }
  CHECK(stack.scalar("SELECT count(*) FROM klingq.batch_budgets WHERE batch = 'b2'") == 0);
  CHECK(c.post("/api/batches/spring%20%2F%20summer/budget", R"({"budget": null})", as_op).status == 200);
  CHECK(stack.scalar("SELECT count(*) FROM klingq.batch_budgets") == 0);
  CHECK(c.post("/api/batches/spring%20%2F%20summer/budget", R"({"budget": null})", as_op).status == 404);
}

TEST_CASE("console api: the overview shows what the database says") {
  Stack stack({"--plan", "starter", "--time-scale", "60"});
  seed(stack);
  auto c = start(stack);
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.instances") >= 1; }, 10s));
  // The overview is cached for a second; klingqd refreshes the balance meanwhile.
  boost::json::value o;
  REQUIRE(Stack::wait_until([&] {
    o = body(c.get("/api/overview", as_viewer));
    auto balance = stack.scalar("SELECT balance FROM klingq.account");
    return balance > 0 && o.at("credits").at("balance") == balance;
  }, 10s));
  CHECK(o.at("states").at("queued").as_int64() == stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'queued'"));
  CHECK(o.at("limits").at("parallel").at("limit").as_int64() ==
        stack.scalar("SELECT parallel_limit FROM klingq.account"));
  CHECK(o.at("limits").at("rpm").at("limit").as_int64() == stack.scalar("SELECT rpm_limit FROM klingq.account"));
  CHECK(o.at("limits").at("daily").at("limit").as_int64() == stack.scalar("SELECT day_limit FROM klingq.account"));
  CHECK(o.at("instances").as_array().size() == 1);
  CHECK(o.at("throughput").as_array().size() == 60);
  CHECK(o.at("queries").as_int64() == 4);
  CHECK(o.at("slow_figures").at("queries").as_int64() == 5);
  CHECK(o.at("slow_figures").at("seconds").as_double() >= 0);
  bool b1 = false;
  for (const auto& b : o.at("batches").as_array()) {
    if (b.at("batch") == "b1") {
      b1 = true;
      CHECK(b.at("states").at("queued").as_int64() == 5);
      CHECK(b.at("states").at("failed").as_int64() == 1);
      CHECK(b.at("total").as_int64() == 6);
      CHECK_FALSE(std::string(b.at("eta").at("text").as_string()).empty());
    }
  }
  CHECK(b1);
}

TEST_CASE("console api: batch counts, the last hour's failures and the burn rate follow the database") {
  // They come from the summary tables of schema 015, which triggers keep: a change the
  // database makes shows on the next refresh of the slow figures, without a scan.
  Stack stack({"--plan", "starter", "--time-scale", "60"});
  seed(stack);
  auto c = start(stack);
  auto first = body(c.get("/api/overview", as_viewer));
  const auto first_read = first.at("slow_figures").at("read_at").as_int64();
  const auto burn_before = first.at("credits").is_object() ? first.at("credits").at("burn_per_hour").as_int64() : 0;
  stack.exec(
      "INSERT INTO klingq.jobs (prompt, batch, run_after) SELECT 'late ' || g, 'late', now() + interval '1 day' "
      "FROM generate_series(1, 7) g;"
      "INSERT INTO klingq.jobs (prompt, batch, run_after) VALUES ('limited', 'late', now() + interval '1 day');"
      "UPDATE klingq.jobs SET state = 'failed', "
      "  last_error = '{\"last\": {\"class\": \"rate_limited\", \"message\": \"429\"}}' WHERE prompt = 'limited';"
      "INSERT INTO klingq.jobs (prompt, batch, run_after) VALUES ('charged', 'late', now() + interval '1 day');"
      "UPDATE klingq.jobs SET state = 'submitted', remote_id = 'r-charged', credit_cost = 123, submitted_at = now() "
      "WHERE prompt = 'charged';"
      // Finished at once: klingqd must not poll a remote id the simulator never made.
      "UPDATE klingq.jobs SET state = 'completed', url = 'https://cdn.example/c.mp4', completed_at = now() "
      "WHERE prompt = 'charged'");
  boost::json::value o;
  const boost::json::value* late = nullptr;
  REQUIRE(Stack::wait_until([&] {
    o = body(c.get("/api/overview", as_viewer));
    late = nullptr;
    for (const auto& b : o.at("batches").as_array()) {
      if (b.at("batch") == "late") late = &b;
    }
    return late != nullptr;
  }, 10s));
  CHECK(o.at("slow_figures").at("read_at").as_int64() > first_read);
  CHECK(late->at("states").at("queued").as_int64() == 7);
  CHECK(late->at("states").at("failed").as_int64() == 1);
  CHECK(late->at("states").at("completed").as_int64() == 1);
  CHECK(late->at("total").as_int64() == 9);
  CHECK(late->at("credits_spent").as_int64() == 123);
  CHECK(o.at("last_hour").at("rate_limited").as_int64() >= 1);
  CHECK(o.at("last_hour").at("failures_by_class").at("rate_limited").as_int64() >= 1);
  CHECK(o.at("credits").at("burn_per_hour").as_int64() >= burn_before + 123);
}

TEST_CASE("console api: a token file that cannot be read stops klingqd at start, naming the key") {
  Stack stack({"--plan", "starter"});
  auto path = stack.write_config({{"http.listen", "\"127.0.0.1:0\""},
                                  {"console.operator_token_file", "\"/nonexistent/tokens\""}});
  auto result = run({KLINGQD_BINARY, "--config", path, "--check-config"}, {{"KLINGQ_API_KEY", sim_api_key}});
  CHECK(result.exit_code == 2);
  CHECK((result.err + result.out).find("console.operator_token_file") != std::string::npos);
}

TEST_CASE("console api: SIGHUP reads the token files again and a removed token stops working") {
  Stack stack({"--plan", "starter"});
  auto c = start(stack);
  CHECK(c.get("/api/overview", as_op).status == 200);
  auto login = c.post("/login", R"({"token": ")" + op_token + R"("})");
  std::smatch m;
  REQUIRE(std::regex_search(login.headers, m, std::regex("Set-Cookie: klingq_session=([^;\r\n]+)")));
  const std::string cookie = "Cookie: klingq_session=" + std::string(m[1]) + "\r\n";
  const std::string rotated = "op-token-rotated-5e7a22";
  write_file(stack, "operators", rotated + "\n");
  stack.daemons[0]->signal(SIGHUP);
  REQUIRE(Stack::wait_until([&] {
    return stack.daemons[0]->stderr_text().find("config_reloaded") != std::string::npos;
  }, 10s));
  CHECK(c.get("/api/overview", as_op).status == 401);
  CHECK(c.get("/api/overview", cookie).status == 401);  // its session ended with it
  CHECK(c.get("/api/overview", bearer(rotated)).status == 200);
  CHECK(c.post("/api/pause", "{}", bearer(rotated)).status == 200);
  CHECK(c.get("/api/overview", as_viewer).status == 200);  // the viewer file is unchanged
}
