// The pure transition module (lib/dispatcher/transition): every outcome class of a
// submit, the edges (lost lease, early webhook, a 402's body, a 409), completions,
// responses to other requests and the poll schedule, on a fake clock.
#include "config/config.hpp"
#include "dispatcher/engine.hpp"
#include "dispatcher/transition.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>

using namespace klingq;
using namespace std::chrono_literals;
using dispatcher::JobState;

namespace {

const TimePoint now = from_epoch_ms(1'800'000'000'000);

dispatcher::TransitionPolicy policy() {
  dispatcher::TransitionPolicy p;
  p.retry_base = 2s;
  p.retry_max = 600s;
  p.poll.first_poll = 180s;
  p.poll.max_interval = 600s;
  return p;
}

api::Outcome outcome(api::OutcomeClass c, unsigned status, std::string message = "") {
  api::Outcome o;
  o.outcome = c;
  o.http_status = status;
  o.message = std::move(message);
  return o;
}

ratelimit::AccountState account(std::int64_t day_used = 10) {
  auto s = ratelimit::from_plan(60, 5, 100);
  s.day_used = day_used;
  return s;
}

boost::json::object parsed(const std::optional<std::string>& text) {
  REQUIRE(text.has_value());
  return boost::json::parse(*text).as_object();
}

const dispatcher::JobFacts job{0, 3, 100, false, std::nullopt};  // first attempt of three, expected cost 100

}  // namespace

TEST_CASE("an accepted submit is submitted, charged what the API said and polled after first_poll") {
  auto a = account();
  auto o = outcome(api::OutcomeClass::accepted, 200);
  o.remote_id = "r-1";
  o.credit_cost = 130;
  auto t = dispatcher::next_after_submit(job, o, {}, a, now, policy(), 0.5);
  CHECK(t.state == JobState::submitted);
  CHECK(t.cost == 130);
  CHECK(t.extra_charge == 30);
  REQUIRE(t.next_poll_at.has_value());
  CHECK(*t.next_poll_at == now + 180s);
  CHECK(t.refund == 0);
  CHECK_FALSE(t.error_json.has_value());
  CHECK(a.day_used == 10);  // it is a job of the day

  o.credit_cost.reset();  // the API did not say: the claim's expectation stands
  t = dispatcher::next_after_submit(job, o, {}, a, now, policy(), 0.5);
  CHECK(t.cost == 100);
  CHECK(t.extra_charge == 0);
  // A submitted row keeps its charge whatever the write found.
  CHECK(dispatcher::refund_after_write(t, true) == 0);
}

TEST_CASE("the first poll with webhooks on comes after first_after + grace, once (180 s, not 360 s)") {
  config::Config cfg;
  cfg.webhook.public_url = "https://hooks.example/klingq";
  cfg.poll.first_after_seconds = 60;
  cfg.poll.webhook_grace_seconds = 120;
  auto options = dispatcher::options_from(cfg, config::Secret("key"));
  CHECK(options.queue.first_poll == 60s);
  CHECK(options.queue.webhook_grace == 120s);
  // The submit of a job that expects a webhook, recorded with nothing learned yet: the
  // grace is added once.
  dispatcher::TransitionPolicy p;
  p.poll.first_poll = options.queue.first_poll;
  p.poll.webhook_grace = options.queue.webhook_grace;
  auto a = account();
  auto o = outcome(api::OutcomeClass::accepted, 200);
  o.remote_id = "r-1";
  dispatcher::JobFacts hooked = job;
  hooked.webhook = true;
  auto t = dispatcher::next_after_submit(hooked, o, {}, a, now, p, 0.5);
  REQUIRE(t.next_poll_at.has_value());
  CHECK(*t.next_poll_at == now + 180s);
  // Without a webhook: first_after alone.
  t = dispatcher::next_after_submit(job, o, {}, a, now, p, 0.5);
  CHECK(*t.next_poll_at == now + 60s);
  cfg.webhook.public_url.clear();
  CHECK(dispatcher::options_from(cfg, config::Secret("key")).queue.first_poll == 60s);
}

TEST_CASE("a job the API calls invalid fails at once with the API's words, a 409 too") {
  auto a = account();
  auto o = outcome(api::OutcomeClass::invalid_job, 400, "prompt too long");
  o.code = "BAD_USER_INPUT";
  auto t = dispatcher::next_after_submit(job, o, {}, a, now, policy(), 0.5);
  CHECK(t.state == JobState::failed);
  CHECK(t.attempts_spent == 1);
  auto error = parsed(t.error_json);
  CHECK(error.at("class").as_string() == "invalid_job");
  CHECK(error.at("status").as_int64() == 400);
  CHECK(error.at("message").as_string() == "prompt too long");
  CHECK(error.at("code").as_string() == "BAD_USER_INPUT");
  CHECK(error.at("attempt").as_int64() == 1);
  CHECK(t.refund == 100);
  CHECK(a.day_used == 9);  // refused for sure: not a job of the day

  // 409: the same idempotency key with another body. Never retried: a retry sends the
  // same key and body again and gets the same answer.
  auto conflict = outcome(api::OutcomeClass::invalid_job, 409, "idempotency key reused with a different body");
  t = dispatcher::next_after_submit({2, 5, 100, false, std::nullopt}, conflict, {}, a, now, policy(), 0.5);
  CHECK(t.state == JobState::failed);
  CHECK(parsed(t.error_json).at("attempt").as_int64() == 3);
  CHECK(parsed(t.error_json).at("status").as_int64() == 409);
  CHECK(a.day_used == 8);
}

TEST_CASE("a transient error requeues with jittered backoff, keeps the day's count, and fails on the last attempt") {
  auto a = account();
  auto o = outcome(api::OutcomeClass::transient, 503, "service unavailable");
  // Attempt 2 of 3: base 2 s doubled once = 4 s, equal jitter in [2 s, 4 s].
  auto low = dispatcher::next_after_submit({1, 3, 100, false, std::nullopt}, o, {}, a, now, policy(), 0.0);
  auto high = dispatcher::next_after_submit({1, 3, 100, false, std::nullopt}, o, {}, a, now, policy(), 1.0);
  CHECK(low.state == JobState::queued);
  CHECK(low.run_after == now + 2s);
  CHECK(high.run_after == now + 4s);
  CHECK(low.attempts_spent == 1);
  CHECK(low.day_counted);  // the API may have accepted it: its resubmit is not counted again
  CHECK(low.wait_reason == "retrying after a transient error");
  CHECK(parsed(low.error_json).at("class").as_string() == "transient");
  CHECK(low.refund == 100);
  CHECK(a.day_used == 10);

  // The cap holds: attempt 20 waits at most retry_max.
  auto late = dispatcher::next_after_submit({19, 30, 100, false, std::nullopt}, o, {}, a, now, policy(), 1.0);
  CHECK(late.run_after == now + 600s);

  auto last = dispatcher::next_after_submit({2, 3, 100, false, std::nullopt}, o, {}, a, now, policy(), 0.5);
  CHECK(last.state == JobState::failed);
  CHECK(parsed(last.error_json).at("attempt").as_int64() == 3);
}

TEST_CASE("a 429 pauses the window it names until Retry-After: no attempt, no error, the day's count back") {
  auto a = account();
  auto o = outcome(api::OutcomeClass::rate_limited, 429, "too many");
  o.window = ratelimit::Window::daily;
  ratelimit::Observation seen;
  seen.retry_after = now + 3600s;
  auto t = dispatcher::next_after_submit(job, o, seen, a, now, policy(), 0.5);
  CHECK(t.state == JobState::queued);
  CHECK(t.run_after == now + 3600s);
  CHECK(t.wait_reason == "rate limited (daily)");
  CHECK(t.attempts_spent == 0);
  CHECK_FALSE(t.error_json.has_value());
  CHECK_FALSE(t.day_counted);
  CHECK(t.refund == 100);
  REQUIRE(a.day_paused_until.has_value());
  CHECK(*a.day_paused_until == now + 3600s);
  CHECK(a.day_used == 100);  // the API says the day is spent

  // Unnamed: the request window, paused for one pacing interval at least.
  auto b = account();
  auto bare = outcome(api::OutcomeClass::rate_limited, 429);
  t = dispatcher::next_after_submit(job, bare, {}, b, now, policy(), 0.5);
  CHECK(t.wait_reason == "rate limited (rpm)");
  REQUIRE(b.rpm_paused_until.has_value());
  CHECK(*b.rpm_paused_until > now);
  CHECK(t.run_after == *b.rpm_paused_until);
}

TEST_CASE("a 402 requeues, and the balance in its body replaces the known balance instead of a refund") {
  auto a = account();
  auto o = outcome(api::OutcomeClass::no_credit, 402, "insufficient credits");
  o.credits_available = 42;
  auto t = dispatcher::next_after_submit(job, o, {}, a, now, policy(), 0.5);
  CHECK(t.state == JobState::queued);
  CHECK(t.run_after == now);
  CHECK(t.wait_reason == "waiting for credit (402 from the API)");
  REQUIRE(t.balance_override.has_value());
  CHECK(*t.balance_override == 42);
  CHECK(dispatcher::refund_after_write(t, true) == 0);
  CHECK(t.attempts_spent == 0);
  CHECK(a.day_used == 9);

  o.credits_available.reset();  // a 402 without a readable balance: assume none is left
  t = dispatcher::next_after_submit(job, o, {}, a, now, policy(), 0.5);
  CHECK(*t.balance_override == 0);
}

TEST_CASE("a 401 halts dispatch for every instance and requeues the job untouched") {
  auto a = account();
  auto o = outcome(api::OutcomeClass::unauthorized, 401, std::string(300, 'x'));
  auto t = dispatcher::next_after_submit(job, o, {}, a, now, policy(), 0.5);
  CHECK(t.state == JobState::queued);
  REQUIRE(t.halt_reason.has_value());
  CHECK(t.halt_reason->rfind("401 from the API: ", 0) == 0);
  CHECK(t.halt_reason->size() == std::string("401 from the API: ").size() + 200);  // bounded
  CHECK(t.wait_reason == "dispatch halted: API key refused (401)");
  CHECK(t.attempts_spent == 0);
  CHECK(t.refund == 100);
}

TEST_CASE("a proxy's 407 halts dispatch like a 401, with a reason a start can recognise") {
  auto a = account();
  auto o = outcome(api::OutcomeClass::unauthorized, 407, "the proxy http://proxy:3128 answered 407");
  auto t = dispatcher::next_after_submit(job, o, {}, a, now, policy(), 0.5);
  CHECK(t.state == JobState::queued);
  REQUIRE(t.halt_reason.has_value());
  CHECK(*t.halt_reason == std::string(dispatcher::proxy_halt_prefix) + "the proxy http://proxy:3128 answered 407");
  CHECK(t.wait_reason == "dispatch halted: the proxy refused the credentials (407)");
  CHECK(t.attempts_spent == 0);
  CHECK(t.refund == 100);
  auto halt = dispatcher::after_response(o, {}, a, now, policy());
  REQUIRE(halt.has_value());
  CHECK(halt->rfind(dispatcher::proxy_halt_prefix, 0) == 0);
}

TEST_CASE("a lost lease gives nothing back: whoever took the row refunded its claim") {
  auto a = account();
  for (auto c : {api::OutcomeClass::invalid_job, api::OutcomeClass::transient, api::OutcomeClass::rate_limited,
                 api::OutcomeClass::unauthorized}) {
    auto t = dispatcher::next_after_submit(job, outcome(c, 500), {}, a, now, policy(), 0.5);
    CAPTURE(api::to_string(c));
    CHECK(dispatcher::refund_after_write(t, true) == 100);
    CHECK(dispatcher::refund_after_write(t, false) == 0);
  }
  // A free job refunds nothing either way.
  auto t = dispatcher::next_after_submit({0, 1, 0, false, std::nullopt}, outcome(api::OutcomeClass::invalid_job, 400), {}, a, now,
                                         policy(), 0.5);
  CHECK(dispatcher::refund_after_write(t, true) == 0);
}

TEST_CASE("headers of any answer teach the shared limiter") {
  auto a = account();
  ratelimit::Observation seen;
  seen.rpm.limit = 30;
  seen.rpm.remaining = 7;
  seen.rpm.reset_at = now + 20s;
  auto o = outcome(api::OutcomeClass::accepted, 200);
  dispatcher::next_after_submit(job, o, seen, a, now, policy(), 0.5);
  CHECK(a.rpm_limit == 30);
  CHECK(a.rpm_remaining == 7);
  CHECK(a.limits_source != "plan");

  // No response at all (a reset connection): nothing to learn.
  auto b = account();
  dispatcher::next_after_submit(job, outcome(api::OutcomeClass::transient, 0), seen, b, now, policy(), 0.5);
  CHECK(b.rpm_limit == 60);
}

TEST_CASE("completions: a video due for download, a failure refunded with the provider's reason") {
  api::Completion done{"r-1", "completed", "https://cdn.example/v.mp4", "{}", "", false};
  auto t = dispatcher::next_after_completion(done, true);
  REQUIRE(t.has_value());
  CHECK(t->state == JobState::completed);
  CHECK(t->download_due);
  CHECK_FALSE(t->refund_cost);
  CHECK_FALSE(t->error_json.has_value());
  CHECK_FALSE(dispatcher::next_after_completion(done, false)->download_due);
  done.url.clear();
  CHECK_FALSE(dispatcher::next_after_completion(done, true)->download_due);

  api::Completion failed{"r-2", "failed", "", "{}", "content policy", false};
  t = dispatcher::next_after_completion(failed, true);
  CHECK(t->state == JobState::failed);
  CHECK(t->refund_cost);
  CHECK_FALSE(t->download_due);
  auto error = parsed(t->error_json);
  CHECK(error.at("class").as_string() == "remote_failed");
  CHECK(error.at("message").as_string() == "content policy");
  failed.error.clear();
  CHECK(parsed(dispatcher::next_after_completion(failed, true)->error_json).at("message").as_string() == "failed");

  // An early webhook (it beat the submit's record) is the same completion, applied later:
  // the decision does not depend on when it is applied.
  api::Completion early{"r-3", "completed", "https://cdn.example/e.mp4", "{\"seed\": 1}", "", false};
  CHECK(dispatcher::next_after_completion(early, true)->state == JobState::completed);

  CHECK_FALSE(dispatcher::next_after_completion({"r-4", "processing", "", "{}", ""}, true).has_value());
}

TEST_CASE("answers to polls and balance queries: a 429 pauses, a 401 halts, headers are learned") {
  auto a = account();
  auto limited = outcome(api::OutcomeClass::rate_limited, 429);
  ratelimit::Observation seen;
  seen.retry_after = now + 30s;
  CHECK_FALSE(dispatcher::after_response(limited, seen, a, now, policy()).has_value());
  REQUIRE(a.rpm_paused_until.has_value());
  CHECK(*a.rpm_paused_until == now + 30s);

  auto refused = outcome(api::OutcomeClass::unauthorized, 401, "bad key");
  auto halt = dispatcher::after_response(refused, {}, a, now, policy());
  REQUIRE(halt.has_value());
  CHECK(*halt == "401 from the API: bad key");

  CHECK_FALSE(dispatcher::after_response(outcome(api::OutcomeClass::accepted, 200), {}, a, now, policy()));
}

TEST_CASE("polls back off from 5 s, doubling, up to poll.max_interval_seconds") {
  auto p = policy();
  CHECK(dispatcher::next_poll_interval(0, p) == 5s);
  CHECK(dispatcher::next_poll_interval(1, p) == 10s);
  CHECK(dispatcher::next_poll_interval(3, p) == 40s);
  CHECK(dispatcher::next_poll_interval(7, p) == 600s);
  CHECK(dispatcher::next_poll_interval(1000, p) == 600s);
  p.poll.max_interval = 7s;
  CHECK(dispatcher::next_poll_interval(1, p) == 7s);
}

TEST_CASE("job states have the schema's names") {
  CHECK(std::string(dispatcher::to_string(JobState::queued)) == "queued");
  CHECK(std::string(dispatcher::to_string(JobState::dispatching)) == "dispatching");
  CHECK(std::string(dispatcher::to_string(JobState::submitted)) == "submitted");
  CHECK(std::string(dispatcher::to_string(JobState::completed)) == "completed");
  CHECK(std::string(dispatcher::to_string(JobState::failed)) == "failed");
  CHECK(std::string(dispatcher::to_string(JobState::cancelled)) == "cancelled");
}

TEST_CASE("by default rows are claimed one claim ahead of the requests on the wire") {
  config::Config cfg;
  auto options = dispatcher::options_from(cfg, config::Secret("key"));
  CHECK(cfg.api.max_connections == 64);
  CHECK(options.claim_batch == 200);
  CHECK(options.max_in_flight == 64 + 200);
  cfg.api.max_connections = 8;
  cfg.dispatch.claim_batch = 10;
  CHECK(dispatcher::options_from(cfg, config::Secret("key")).max_in_flight == 18);
  cfg.dispatch.max_in_flight_requests = 5;  // set: kept as it is
  CHECK(dispatcher::options_from(cfg, config::Secret("key")).max_in_flight == 5);
}
