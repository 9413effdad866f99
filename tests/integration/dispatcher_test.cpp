// klingqd end to end: real PostgreSQL, the real klingq-sim over TCP, the real daemon
// binary. Each test states the limit or fault it exercises and checks the simulator's
// own counters, which catch any overshoot or double charge.
#include "config/config.hpp"
#include "db/pool.hpp"
#include "dispatcher/claimer.hpp"
#include "dispatcher/context.hpp"
#include "dispatcher/credit_refresher.hpp"
#include "dispatcher/engine.hpp"
#include "dispatcher/recorder.hpp"
#include "http/client.hpp"
#include "ops/metrics.hpp"
#include "support/http_call.hpp"
#include "support/stack.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include <csignal>
#include <fstream>
#include <future>
#include <thread>

using namespace klingq::testing;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {
long long stat(const json::object& stats, const char* key) { return stats.at(key).to_number<long long>(); }
long long rate_limited_total(const json::object& stats) {
  return stats.at("rate_limited").at("total").to_number<long long>();
}
bool all_terminal(Stack& stack) {
  return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state NOT IN ('completed', 'failed', 'cancelled')") == 0;
}
// Every accepted job of the simulator belongs to exactly one row, and vice versa.
void check_one_to_one(Stack& stack) {
  auto stats = stack.sim_stats();
  CHECK(stat(stats, "duplicate_charges") == 0);
  CHECK(stat(stats, "accepted") == stack.scalar("SELECT count(*) FROM klingq.jobs WHERE remote_id IS NOT NULL"));
  CHECK(stack.scalar("SELECT count(DISTINCT remote_id) FROM klingq.jobs WHERE remote_id IS NOT NULL") ==
        stack.scalar("SELECT count(*) FROM klingq.jobs WHERE remote_id IS NOT NULL"));
}
}  // namespace

TEST_CASE("dispatch: a batch drains on the free plan with webhooks, never over a limit") {
  Stack stack({"--plan", "free", "--time-scale", "60", "--gen-seconds", "2:4"});
  stack.insert_jobs(12);
  stack.start_daemon(stack.with_webhooks());
  REQUIRE(Stack::wait_until([&] { return all_terminal(stack); }, 60s));
  auto stats = stack.sim_stats();
  CHECK(rate_limited_total(stats) == 0);
  CHECK(stat(stats, "max_parallel_seen") <= 1);
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed' AND url LIKE 'https://cdn.doitong.com/%' "
                     "AND credit_cost = 100 AND metadata ? 'width' AND completed_at IS NOT NULL") == 12);
  // Webhooks did the work: polling stays a small share of the requests.
  CHECK(stack.scalar("SELECT count(*) FROM klingq.job_events WHERE to_state = 'completed'") == 12);
  check_one_to_one(stack);
}

TEST_CASE("dispatch: the request window is the tightest limit: paced, no 429") {
  Stack stack({"--plan", "enterprise", "--rpm", "10", "--parallel", "0", "--daily", "0", "--time-scale", "60",
               "--gen-seconds", "1:1"});
  stack.insert_jobs(30);
  stack.start_daemon(stack.with_webhooks({{"limits.plan", "enterprise"}}));
  REQUIRE(Stack::wait_until([&] { return all_terminal(stack); }, 60s));
  auto stats = stack.sim_stats();
  CHECK(rate_limited_total(stats) == 0);
  CHECK(stat(stats, "max_window_requests_seen") <= 10);
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 30);
  check_one_to_one(stack);
}

TEST_CASE("dispatch: the daily cap holds and reopens at simulated midnight") {
  // An hour a second: simulated midnight comes 12 s after the simulator starts.
  Stack stack({"--plan", "enterprise", "--rpm", "0", "--parallel", "0", "--daily", "5", "--time-scale", "3600",
               "--gen-seconds", "1:1", "--clock-start", "2026-11-25T12:00:00Z"});
  stack.insert_jobs(8);
  stack.start_daemon(stack.with_webhooks({{"limits.plan", "enterprise"}}));
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 5; }, 20s));
  // Held by the daily cap, not failed: the three wait in the queue until midnight.
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'queued'") == 3);
  REQUIRE(Stack::wait_until([&] { return all_terminal(stack); }, 40s));
  auto stats = stack.sim_stats();
  CHECK(stats.at("rate_limited").at("daily").to_number<long long>() == 0);
  CHECK(stat(stats, "accepted") == 8);
  check_one_to_one(stack);
}

TEST_CASE("dispatch: the credit gate waits for a top-up instead of overspending") {
  Stack stack({"--plan", "enterprise", "--rpm", "0", "--parallel", "0", "--daily", "0", "--time-scale", "60",
               "--gen-seconds", "1:1", "--credits", "250"});
  stack.insert_jobs(5);
  stack.start_daemon(stack.with_webhooks({{"limits.plan", "enterprise"}}));
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 2; }, 30s));
  // Three jobs wait for credit, queued, not failed; the API never saw a request it could not pay.
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'queued'") == 3);
  CHECK(stat(stack.sim_stats(), "payment_required") == 0);
  stack.sim_config({{"credits", 1000}});
  REQUIRE(Stack::wait_until([&] { return all_terminal(stack); }, 30s));
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 5);
  check_one_to_one(stack);
}

TEST_CASE("dispatch: a 401 halts everything without failing a job, a fixed key resumes on SIGHUP") {
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1"});
  stack.insert_jobs(3);
  auto key_file = stack.dir + "/api-key";
  std::ofstream(key_file) << "wrong-key\n";
  auto& daemon = stack.start_daemon(stack.with_webhooks({{"limits.plan", "enterprise"}, {"api.key_file", "\"" + key_file + "\""}}));
  REQUIRE(Stack::wait_until([&] { return !stack.text("SELECT coalesce(max(halted_reason), '') FROM klingq.account").empty(); }, 20s));
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'failed'") == 0);
  CHECK(stat(stack.sim_stats(), "unauthorized") >= 1);
  CHECK(daemon.stderr_text().find("wrong-key") == std::string::npos);
  std::ofstream(key_file) << sim_api_key << "\n";
  daemon.signal(SIGHUP);
  REQUIRE(Stack::wait_until([&] { return all_terminal(stack); }, 30s));
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 3);
}

TEST_CASE("dispatch: a row the API refuses fails with the API's message, the rest go on") {
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1"});
  // The API is stricter than the table here (the constraint is dropped for the test).
  stack.exec("ALTER TABLE klingq.jobs DROP CONSTRAINT jobs_prompt_not_blank");
  stack.exec("INSERT INTO klingq.jobs (prompt) VALUES ('   ')");
  stack.insert_jobs(3);
  stack.start_daemon(stack.with_webhooks({{"limits.plan", "enterprise"}}));
  REQUIRE(Stack::wait_until([&] { return all_terminal(stack); }, 30s));
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 3);
  CHECK(stack.text("SELECT last_error->'last'->>'class' FROM klingq.jobs WHERE state = 'failed'") == "invalid_job");
  CHECK(stack.text("SELECT last_error->'last'->>'message' FROM klingq.jobs WHERE state = 'failed'").find("must not be empty") != std::string::npos);
  CHECK(stack.scalar("SELECT attempts FROM klingq.jobs WHERE state = 'failed'") == 1);
}

TEST_CASE("dispatch: a 5xx storm and lost answers retry with the same key and charge once") {
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1", "--fault-500", "0.3",
               "--fault-reset-after", "0.15", "--fault-malformed", "0.05", "--seed", "7"});
  stack.insert_jobs(25);
  stack.start_daemon(stack.with_webhooks({{"limits.plan", "enterprise"}}));
  REQUIRE(Stack::wait_until([&] { return all_terminal(stack); }, 60s));
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 25);
  auto stats = stack.sim_stats();
  CHECK(stat(stats, "idempotent_replays") >= 1);  // a lost answer was asked again, not charged again
  check_one_to_one(stack);
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE last_error->'history' @> '[{\"class\": \"transient\"}]'") >= 1);
}

TEST_CASE("dispatch: polling completes jobs when every webhook is dropped") {
  Stack stack({"--plan", "starter", "--time-scale", "60", "--gen-seconds", "1:1", "--webhook-drop", "1"});
  stack.insert_jobs(6);
  stack.start_daemon(stack.with_webhooks({{"limits.plan", "starter"}}));
  REQUIRE(Stack::wait_until([&] { return all_terminal(stack); }, 60s));
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed' AND polls > 0") == 6);
  CHECK(rate_limited_total(stack.sim_stats()) == 0);
}

TEST_CASE("dispatch: three instances share one free account without a 429") {
  Stack stack({"--plan", "free", "--time-scale", "60", "--gen-seconds", "1:2"});
  stack.insert_jobs(15);
  for (int i = 0; i < 3; ++i) {
    stack.start_daemon(stack.with_webhooks({{"dispatch.instance_id", "\"instance-" + std::to_string(i) + "\""}}));
  }
  REQUIRE(Stack::wait_until([&] { return all_terminal(stack); }, 90s));
  auto stats = stack.sim_stats();
  CHECK(rate_limited_total(stats) == 0);
  CHECK(stat(stats, "max_parallel_seen") <= 1);
  CHECK(stat(stats, "max_window_requests_seen") <= 10);
  CHECK(stack.scalar("SELECT count(DISTINCT lease_owner) FROM klingq.jobs") >= 2);
  check_one_to_one(stack);
}

TEST_CASE("dispatch: kill -9 mid-request: the lease expires and the same key finds the same job") {
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1", "--fault-slow", "1",
               "--slow-ms", "1500"});
  stack.insert_jobs(4);
  // The restarted daemon keeps the same config: a different webhookUrl would make the
  // resubmit a different body under the same key, which the API refuses (409).
  auto config = stack.with_webhooks({{"limits.plan", "enterprise"}});
  auto& first = stack.start_daemon(config);
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'dispatching'") == 4; }, 20s));
  first.signal(SIGKILL);
  first.wait(5s);
  stack.sim_config({{"fault_slow", 0}});
  stack.start_daemon(config);
  REQUIRE(Stack::wait_until([&] { return all_terminal(stack); }, 40s));
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 4);
  CHECK(stack.scalar("SELECT count(*) FROM klingq.job_events WHERE detail->>'wait_reason' LIKE 'lease of%expired%'") >= 1);
  check_one_to_one(stack);
}

TEST_CASE("dispatch: SIGTERM stops cleanly with exit 0 and the instance row removed") {
  Stack stack({"--plan", "free", "--time-scale", "60", "--gen-seconds", "1:1"});
  auto& daemon = stack.start_daemon(stack.with_webhooks());
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.instances") == 1; }, 20s));
  daemon.signal(SIGTERM);
  auto code = daemon.wait(15s);
  REQUIRE(code);
  CHECK(*code == 0);
  CHECK(stack.scalar("SELECT count(*) FROM klingq.instances") == 0);
}

TEST_CASE("dispatch: a plan downgrade mid-run costs at most one 429 per window and loses nothing") {
  Stack stack({"--plan", "pro", "--time-scale", "60", "--gen-seconds", "2:4"});
  stack.insert_jobs(40);
  stack.start_daemon(stack.with_webhooks({{"limits.plan", "pro"}}));
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") >= 10; }, 30s));
  stack.sim_config({{"plan", "free"}});
  REQUIRE(Stack::wait_until([&] { return all_terminal(stack); }, 90s));
  auto stats = stack.sim_stats();
  MESSAGE("429s after the downgrade: " << json::serialize(stats.at("rate_limited")));
  CHECK(rate_limited_total(stats) <= 2);  // the one request that found each new limit
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 40);
  CHECK(stack.scalar("SELECT parallel_limit FROM klingq.account") == 1);
  check_one_to_one(stack);
}

TEST_CASE("dispatch: a batch whose budget is spent waits in the queue with a reason") {
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1"});
  stack.exec("INSERT INTO klingq.batch_budgets (batch, budget) VALUES ('capped', 250)");
  stack.insert_jobs(5, "batch", "'capped'");
  stack.insert_jobs(2);
  stack.start_daemon(stack.with_webhooks({{"limits.plan", "enterprise"}}));
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 4; }, 30s));
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'queued' AND wait_reason LIKE 'batch budget spent%'") == 3;
  }, 10s));
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE batch IS NULL AND state = 'completed'") == 2);
  stack.exec("UPDATE klingq.batch_budgets SET budget = 1000; NOTIFY klingq_jobs");
  REQUIRE(Stack::wait_until([&] { return all_terminal(stack); }, 30s));
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 7);
}

// ---- the services in this process ------------------------------------------------------
// The same services klingqd runs, called directly: one round of a service at a time, or a
// whole engine on a network thread of the test, against the stack's PostgreSQL and
// simulator.
namespace {
namespace asio = boost::asio;
namespace dispatcher = klingq::dispatcher;

dispatcher::EngineOptions engine_options(Stack& stack, std::map<std::string, std::string> overrides = {}) {
  overrides.emplace("limits.plan", "enterprise");
  return dispatcher::options_from(klingq::config::load(stack.write_config(std::move(overrides))),
                                  klingq::config::Secret(sim_api_key));
}

// Runs a test coroutine on io to its end, within a deadline.
void run_to_end(asio::io_context& io, asio::awaitable<void> coroutine, std::chrono::seconds deadline = 30s) {
  bool ended = false;
  std::exception_ptr failure;
  asio::co_spawn(io, std::move(coroutine), [&](std::exception_ptr error) {
    ended = true;
    failure = error;
  });
  io.run_for(deadline);
  REQUIRE_MESSAGE(ended, "the test coroutine did not end within its deadline");
  if (failure) std::rethrow_exception(failure);
}

// A whole engine on a thread of its own, as klingqd runs it (without the listeners).
class EngineThread {
 public:
  EngineThread(Stack& stack, dispatcher::EngineOptions options)
      : pool_(stack.database, 4),
        api_(io_.get_executor(), "http://" + stack.sim_address, client_options()),
        engine_(io_.get_executor(), pool_, api_, metrics_, std::move(options)) {
    asio::co_spawn(io_, engine_.run(), [this](std::exception_ptr error) {
      if (error) returned_.set_exception(error);
      else returned_.set_value();
    });
    thread_ = std::thread([this] { io_.run(); });
  }
  ~EngineThread() {
    io_.stop();
    thread_.join();
    pool_.stop();
  }
  // stop(), as SIGTERM does; true when run() returned within the deadline.
  bool stop_and_wait(std::chrono::milliseconds deadline) {
    asio::post(io_, [this] { engine_.stop(); });
    auto returned = returned_future_.wait_for(deadline) == std::future_status::ready;
    if (returned) returned_future_.get();  // rethrows what run() threw
    return returned;
  }

 private:
  static klingq::http::ClientOptions client_options() {
    klingq::http::ClientOptions options;
    options.timeout = 30s;  // longer than any slow answer below: only shutdown cuts one short
    return options;
  }
  asio::io_context io_{1};
  klingq::db::Pool pool_;
  klingq::ops::Metrics metrics_;
  klingq::http::Client api_;
  dispatcher::Engine engine_;
  std::promise<void> returned_;
  std::future<void> returned_future_ = returned_.get_future();
  std::thread thread_;
};

}  // namespace

TEST_CASE("dispatch: one claimer round claims what the limits allow, one recorder round records every submit") {
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1"});
  stack.insert_jobs(3);
  asio::io_context io(1);
  klingq::db::Pool pool(stack.database, 2);
  klingq::ops::Metrics metrics;
  klingq::http::Client api(io.get_executor(), "http://" + stack.sim_address, klingq::http::ClientOptions{});
  dispatcher::Context context(io.get_executor(), pool, api, metrics, engine_options(stack));
  dispatcher::Recorder recorder(context);
  dispatcher::Claimer claimer(context, recorder);
  dispatcher::CreditRefresher credits(context);

  run_to_end(io, [&]() -> asio::awaitable<void> {
    auto settings = context.options.queue;
    co_await pool.run([settings](pqxx::connection& c) { dispatcher::ensure_account(c, settings); });
    // Without a known balance the credit gate holds every row: one refresh first.
    co_await credits.run_once();
    CHECK(stack.scalar("SELECT balance FROM klingq.account") == 100000);

    const auto wait = co_await claimer.run_once();
    CHECK(wait > dispatcher::SteadyDuration::zero());  // fewer rows than it asked for: no more now
    CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'dispatching'") == 3);
    CHECK(recorder.outstanding() == 3);
    CHECK(context.in_flight == 3);
    // The submits are tasks of the group: joined, each has handed its outcome over.
    const bool joined = co_await context.tasks.join(std::chrono::steady_clock::now() + 20s);
    CHECK(joined);
    CHECK(recorder.queued() == 3);
    CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'dispatching'") == 3);  // not recorded yet

    const auto after_group = co_await recorder.run_once(0);
    CHECK(after_group == dispatcher::SteadyDuration::zero());
    CHECK(recorder.queued() == 0);
    CHECK(recorder.outstanding() == 0);
    CHECK(context.in_flight == 0);
    CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'submitted' AND remote_id IS NOT NULL") == 3);
    const auto idle = co_await recorder.run_once(1);
    CHECK(idle == std::chrono::hours(1));  // nothing queued: sleep until add()
  }());
  pool.stop();
  check_one_to_one(stack);
}

TEST_CASE("dispatch: stop() waits for every coroutine: run() returns after the in-flight submits are recorded") {
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "30:30"});
  EngineThread engine(stack, engine_options(stack));
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.account WHERE balance IS NOT NULL") == 1; }, 10s));
  // Every answer from now on takes 1.5 s: the submits are on the wire when stop() comes.
  stack.sim_config({{"fault_slow", 1}, {"slow_ms", 1500}});
  stack.insert_jobs(4);
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'dispatching'") == 4; }, 10s));
  REQUIRE(engine.stop_and_wait(15s));
  // Recorded before run() returned, not released back to the queue; the instance row is gone.
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'submitted' AND remote_id IS NOT NULL") == 4);
  CHECK(stack.scalar("SELECT count(*) FROM klingq.instances") == 0);
  check_one_to_one(stack);
}

TEST_CASE("dispatch: requests still on the wire when the grace ends are abandoned and their rows released") {
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "30:30"});
  auto options = engine_options(stack);
  options.shutdown_grace = 300ms;
  EngineThread engine(stack, std::move(options));
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.account WHERE balance IS NOT NULL") == 1; }, 10s));
  stack.sim_config({{"fault_slow", 1}, {"slow_ms", 8000}});
  stack.insert_jobs(3);
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'dispatching'") == 3; }, 10s));
  const auto stopped_at = std::chrono::steady_clock::now();
  REQUIRE(engine.stop_and_wait(15s));
  // Well before the answers (8 s): the grace, then the abandoned exchanges end at once.
  CHECK(std::chrono::steady_clock::now() - stopped_at < 5s);
  // Unsent as far as this instance knows: back in the queue, no attempt spent; the next
  // submit with the same key finds whatever the API did.
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'queued' AND attempts = 0") == 3);
  CHECK(stack.scalar("SELECT count(*) FROM klingq.instances") == 0);
}
