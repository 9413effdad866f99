// What klingqd does when the world misbehaves: an operator pause, a PostgreSQL outage
// mid-batch, a dropped LISTEN connection, an instance killed among three on one free
// account, forged and oversized webhooks, prompts built to break things.
#include "support/http_call.hpp"
#include "support/pg_cluster.hpp"
#include "support/stack.hpp"
#include "webhook/signature.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include <algorithm>
#include <csignal>
#include <map>
#include <set>

using namespace klingq::testing;
using namespace std::chrono_literals;

namespace {
long long completed(Stack& stack) {
  return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'");
}
std::string cli(Stack& stack, std::vector<std::string> args) {
  args.insert(args.begin(), {KLINGQ_CLI_BINARY, "--database", stack.database});
  auto result = run(args);
  REQUIRE_MESSAGE(result.exit_code == 0, result.err);
  return result.out;
}
}  // namespace

TEST_CASE("reliability: klingq pause holds every instance, resume drains") {
  Stack stack({"--plan", "starter", "--time-scale", "60", "--gen-seconds", "1:1"});
  auto& daemon = stack.start_daemon(stack.with_webhooks({{"limits.plan", "starter"}}));
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.account") == 1; }, 10s));
  cli(stack, {"pause", "--reason", "maintenance"});
  stack.insert_jobs(4);
  // Held: the daemon logs the hold once, and no row leaves the queue.
  REQUIRE(Stack::wait_until([&] { return daemon.stderr_text().find("dispatch_held by=paused") != std::string::npos; }, 10s));
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state <> 'queued'") == 0);
  CHECK(stack.sim_stats().at("accepted").to_number<long long>() == 0);
  cli(stack, {"resume"});
  REQUIRE(Stack::wait_until([&] { return completed(stack) == 4; }, 30s));
}

TEST_CASE("reliability: PostgreSQL restarted mid-batch - webhooks stay up, readyz reports it, nothing is lost") {
  Stack stack({"--plan", "starter", "--time-scale", "60", "--gen-seconds", "2:4"});
  stack.insert_jobs(20);
  const int http_port = free_port();
  const std::string ops = "127.0.0.1:" + std::to_string(http_port);
  auto overrides = stack.with_webhooks({{"limits.plan", "starter"},
                                        {"http.listen", "\"" + ops + "\""}});
  auto& daemon = stack.start_daemon(overrides);
  REQUIRE(Stack::wait_until([&] { return completed(stack) >= 3; }, 30s));
  PgCluster::shared().stop_for_outage();
  CHECK(Stack::wait_until([&] { return http_call(ops, "GET", "/readyz").status == 503; }, 15s));
  CHECK(http_call(ops, "GET", "/healthz").status == 200);
  PgCluster::shared().start_after_outage();
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state NOT IN ('completed', 'failed')") == 0;
  }, 90s));
  CHECK(completed(stack) == 20);
  CHECK(Stack::wait_until([&] { return http_call(ops, "GET", "/readyz").status == 200; }, 15s));
  auto stats = stack.sim_stats();
  CHECK(stats.at("duplicate_charges").to_number<long long>() == 0);
  CHECK(stats.at("accepted").to_number<long long>() == 20);
  CHECK(daemon.running());
}

TEST_CASE("reliability: forged, unsigned and oversized webhooks are refused and record nothing") {
  Stack stack({"--plan", "starter", "--time-scale", "60", "--gen-seconds", "1:1"});
  stack.insert_jobs(1);
  auto overrides = stack.with_webhooks({{"limits.plan", "starter"}, {"webhook.max_body_bytes", "4096"}});
  const std::string hook = overrides["webhook.listen"].substr(1, overrides["webhook.listen"].size() - 2);
  stack.start_daemon(overrides);
  REQUIRE(Stack::wait_until([&] { return completed(stack) == 1; }, 30s));
  auto remote = stack.text("SELECT remote_id FROM klingq.jobs");
  // A second job, submitted but kept processing by a long generation time.
  stack.sim_config({{"gen_min_seconds", 100000}, {"gen_max_seconds", 100000}});
  stack.insert_jobs(1);
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'submitted'") == 1; }, 30s));
  auto pending = stack.text("SELECT remote_id FROM klingq.jobs WHERE state = 'submitted'");
  const std::string body = R"({"id":")" + pending + R"(","status":"completed","url":"https://evil.example/x.mp4"})";
  auto forged = http_call(hook, "POST", "/klingq/webhook", body,
                          "X-Doitong-Signature: " + klingq::webhook::sign("guessed-secret", body) + "\r\n");
  CHECK(forged.status == 401);
  CHECK(http_call(hook, "POST", "/klingq/webhook", body).status == 401);
  CHECK(http_call(hook, "POST", "/klingq/webhook", std::string(8192, 'x')).status == 413);
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'submitted'") == 1);
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE url LIKE '%evil%'") == 0);
  // A correctly signed duplicate for the finished job changes nothing and is acknowledged.
  const std::string replay = R"({"id":")" + remote + R"(","status":"failed","error":"late"})";
  auto duplicate = http_call(hook, "POST", "/klingq/webhook", replay,
                             "X-Doitong-Signature: " + klingq::webhook::sign(sim_webhook_secret, replay) + "\r\n");
  CHECK(duplicate.status == 200);
  CHECK(stack.text("SELECT state::text FROM klingq.jobs WHERE remote_id = '" + remote + "'") == "completed");
}

TEST_CASE("reliability: three instances on one free account, one killed mid-batch and restarted") {
  // The account allows two jobs more than the batch needs, a day and in credits (an
  // exact fit can hold the killed instance's row until the next day: klingq cannot tell
  // the API's free replay of an accepted job from a new one, and stays on the safe side).
  // Slow answers keep submits in flight, so the kill lands mid-request. The simulated day
  // starts at 01:00: at 60x a run that began within 15 minutes of real midnight crossed
  // the simulator's midnight, which reset its day count and failed the count below.
  const int jobs = 30;
  const int cap = jobs + 2;
  Stack stack({"--plan", "free", "--daily", std::to_string(cap), "--credits", std::to_string(cap * 100),
               "--time-scale", "60", "--gen-seconds", "1:2", "--fault-slow", "0.4", "--slow-ms", "600",
               "--seed", "11", "--clock-start", "2026-11-25T01:00:00Z"});
  stack.insert_jobs(jobs);
  std::vector<std::map<std::string, std::string>> configs;
  for (int i = 0; i < 3; ++i) {
    configs.push_back(stack.with_webhooks({{"dispatch.instance_id", "\"instance-" + std::to_string(i) + "\""}}));
    stack.start_daemon(configs.back());
  }
  // What must hold at every moment, sampled while the batch runs.
  long long lowest_sim_balance = cap * 100;
  long long lowest_known_balance = cap * 100;
  long long highest_day_used = 0;
  auto sample = [&] {
    auto stats = stack.sim_stats();
    lowest_sim_balance = std::min(lowest_sim_balance, stats.at("credits_balance").to_number<long long>());
    highest_day_used = std::max(highest_day_used, stats.at("day").at("used").to_number<long long>());
    lowest_known_balance = std::min(lowest_known_balance,
                                    stack.scalar("SELECT coalesce(min(balance), 0) FROM klingq.account"));
  };
  REQUIRE(Stack::wait_until([&] {
    sample();
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") >= 3;
  }, 60s));
  // From here every answer comes late, so each claimed row stays on the wire for the slow
  // time: the victim is whichever instance holds one (waiting for a given instance to be
  // caught mid-request was luck: the instance that records a completion often claims
  // the next row itself, and at one job in parallel another may never be seen holding one).
  stack.sim_config({{"fault_slow", 1.0}});
  std::string owner;
  REQUIRE(Stack::wait_until([&] {
    sample();
    owner = stack.text("SELECT coalesce(min(lease_owner), '') FROM klingq.jobs WHERE state = 'dispatching'");
    return !owner.empty();
  }, 60s));
  const std::size_t v = static_cast<std::size_t>(std::stoi(owner.substr(owner.find('-') + 1)));
  REQUIRE(v < configs.size());
  auto& victim = *stack.daemons[v];
  victim.signal(SIGKILL);
  REQUIRE(victim.wait(5s));
  stack.sim_config({{"fault_slow", 0.4}});
  const long long done_before_restart = stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'");
  auto& restarted = stack.start_daemon(configs[v]);
  const bool drained = Stack::wait_until([&] {
    sample();
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state NOT IN ('completed', 'failed', 'cancelled')") == 0;
  }, 120s);
  if (!drained) {
    MESSAGE("rows: " << stack.text("SELECT string_agg(id || ' ' || state || ' ' || coalesce(lease_owner, '-') || ' ' || "
                                   "coalesce(wait_reason, '-'), E'\n' ORDER BY id) FROM klingq.jobs WHERE state NOT IN ('completed')"));
    MESSAGE("account: " << stack.text("SELECT row_to_json(a)::text FROM klingq.account a"));
    MESSAGE("sim: " << boost::json::serialize(stack.sim_stats()));
    for (auto& daemon : stack.daemons) MESSAGE("daemon stderr tail: " << daemon->stderr_text().substr(daemon->stderr_text().size() > 3000 ? daemon->stderr_text().size() - 3000 : 0));
  }
  REQUIRE(drained);
  sample();
  auto stats = stack.sim_stats();
  MESSAGE("completed before the restart: " << done_before_restart << ", sim: " << boost::json::serialize(stats));
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == jobs);
  CHECK(stats.at("rate_limited").at("total").to_number<long long>() == 0);  // no self-caused 429
  CHECK(stats.at("max_parallel_seen").to_number<long long>() <= 1);
  CHECK(stats.at("max_window_requests_seen").to_number<long long>() <= 10);
  CHECK(highest_day_used <= cap);
  CHECK(stats.at("day").at("used").to_number<long long>() == jobs);
  CHECK(stats.at("rate_limited").at("daily").to_number<long long>() == 0);
  CHECK(stats.at("payment_required").to_number<long long>() == 0);
  CHECK(lowest_sim_balance >= 0);
  CHECK(lowest_known_balance >= 0);
  CHECK(stats.at("credits_spent").to_number<long long>() == jobs * 100);
  CHECK(stats.at("duplicate_charges").to_number<long long>() == 0);
  CHECK(stats.at("accepted").to_number<long long>() == jobs);
  CHECK(stack.scalar("SELECT count(DISTINCT remote_id) FROM klingq.jobs") == jobs);
  CHECK(restarted.running());
}

TEST_CASE("reliability: the LISTEN connection is killed - NOTIFY wake-ups come back without a restart") {
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1"});
  // Nothing but a NOTIFY may wake the claim loop within the test's deadlines: the safety
  // timer and the balance refresh (which wakes it too) are set to minutes.
  auto& daemon = stack.start_daemon(stack.with_webhooks({{"limits.plan", "enterprise"},
                                                         {"dispatch.safety_poll_ms", "600000"},
                                                         {"credits.refresh_seconds", "3600"}}));
  const std::string listener_pid_sql =
      "SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'";
  REQUIRE(Stack::wait_until([&] { return stack.scalar(listener_pid_sql) != 0; }, 15s));
  const long long first_listener = stack.scalar(listener_pid_sql);
  auto picked_up_within = [&](const std::string& prompt, std::chrono::milliseconds deadline) {
    stack.exec("INSERT INTO klingq.jobs (prompt) VALUES ('" + prompt + "')");
    return Stack::wait_until([&] {
      return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE prompt = '" + prompt + "' AND state <> 'queued'") == 1;
    }, deadline);
  };
  // The claim loop sleeps on its 10-minute timer once the queue is empty.
  REQUIRE(picked_up_within("before the drop", 10s));
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state <> 'completed'") == 0; }, 15s));

  stack.exec("SELECT pg_terminate_backend(" + std::to_string(first_listener) + ")");
  REQUIRE(Stack::wait_until([&] { return daemon.stderr_text().find("listen_restored") != std::string::npos; }, 15s));
  const long long second_listener = stack.scalar(listener_pid_sql);
  CHECK(second_listener != 0);
  CHECK(second_listener != first_listener);
  // The reconnect wakes the claim loop once for rows inserted while nobody listened;
  // that claim (empty queue) must be over before the insert below, which then can only
  // be found through its NOTIFY.
  const auto restored_at = daemon.stderr_text().find("listen_restored");
  REQUIRE(Stack::wait_until([&] { return daemon.stderr_text().find("claimed jobs=0", restored_at) != std::string::npos; }, 10s));
  CHECK(picked_up_within("after the drop", 10s));
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state <> 'completed'") == 0; }, 15s));
  CHECK(daemon.running());
}

TEST_CASE("reliability: odd prompts are refused by a named constraint or reach the API byte-exact") {
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1"});
  pqxx::connection connection(stack.database);
  auto insert = [&](const std::string& prompt) {
    pqxx::work tx(connection);
    tx.exec_params("INSERT INTO klingq.jobs (prompt) VALUES ($1)", prompt);
    tx.commit();
  };
  // Refused at INSERT, each by the constraint that names the rule.
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"", "jobs_prompt_not_blank"},
      {" \t\r\n\f\v ", "jobs_prompt_not_blank"},
      {std::string(2501, 'x'), "jobs_prompt_max_2500_chars"},
  };
  for (const auto& entry : refused) {
    CAPTURE(entry.first.size());
    std::string error;
    try {
      insert(entry.first);
    } catch (const pqxx::check_violation& e) {
      error = e.what();
    }
    CHECK(error.find(entry.second) != std::string::npos);
  }
  // PostgreSQL text cannot hold NUL at all.
  CHECK_THROWS_WITH(stack.exec("INSERT INTO klingq.jobs (prompt) VALUES (E'nul\\u0000inside')"),
                    doctest::Contains("invalid Unicode escape value"));
  std::string emoji_2500;
  for (int i = 0; i < 2500; ++i) emoji_2500 += "\xF0\x9F\x90\xB1";  // 2500 characters, 10000 bytes
  const std::vector<std::string> accepted = {
      "'); DROP TABLE klingq.jobs; --",
      "\" OR 1=1; -- \\\" }}) { mutation { cancel } } #",
      "{\"prompt\": \"not the prompt\", \"duration\": 10}",
      "control \x01\x02\x07\x08\x1b[31mred\x1b[0m \x7f characters",
      "tab\tnewline\ncarriage\r\nreturn",
      "🐱🏄‍♀️ 👩🏽‍🚀 猫がサーフィン — café naïve \u202Eright-to-left\u202C e\u0301",
      "back\\slash \\N \\u0000 %s %n ${HOME} $(id)",
      "  leading and trailing spaces  ",
      emoji_2500,
      std::string(2500, 'y'),
  };
  for (const auto& prompt : accepted) insert(prompt);
  stack.start_daemon(stack.with_webhooks({{"limits.plan", "enterprise"}}));
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state NOT IN ('completed', 'failed')") == 0;
  }, 60s));
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") ==
        static_cast<long long>(accepted.size()));
  // What the API received, job by job, is what the row holds, byte for byte.
  auto reply = http_call(stack.sim_address, "GET", "/_sim/jobs");
  REQUIRE(reply.status == 200);
  std::map<std::string, std::string> received;  // remote id -> prompt
  const auto sim_jobs = boost::json::parse(reply.body);
  for (const auto& job : sim_jobs.at("jobs").as_array()) {
    received[std::string(job.at("id").as_string())] = std::string(job.at("prompt").as_string());
  }
  CHECK(received.size() == accepted.size());
  std::set<std::string> rows;
  pqxx::read_transaction tx(connection);
  for (const auto& row : tx.exec("SELECT remote_id, prompt FROM klingq.jobs")) {
    const std::string prompt = row[1].as<std::string>();
    rows.insert(prompt);
    const std::string shown = prompt.substr(0, 60);
    CAPTURE(shown);
    REQUIRE(received.count(row[0].as<std::string>()) == 1);
    CHECK(received[row[0].as<std::string>()] == prompt);
  }
  CHECK(rows == std::set<std::string>(accepted.begin(), accepted.end()));
}
