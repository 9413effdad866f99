// The poll schedule (lib/dispatcher/poll_schedule): the generation-time model's lookup,
// polls at the learned quantiles, the seed's pace without history, webhook lateness, and
// the request budget polls may use when capacity holds dispatch; on a fake clock.
#include "dispatcher/poll_schedule.hpp"
#include "ratelimit/limiter.hpp"

#include <doctest/doctest.h>

#include <random>

using namespace klingq;
using namespace klingq::dispatcher;
using namespace std::chrono_literals;

namespace {

const TimePoint t0 = from_epoch_ms(1'800'000'000'000);

// Uniform 30..90 s: p10 36, p25 45, p50 60, p75 75, p90 84, p99 89.4.
GenerationTimes uniform_30_90() {
  return {200, 36s, 45s, 60s, 75s, 84s, std::chrono::milliseconds(89400)};
}

double secs(Duration d) { return std::chrono::duration<double>(d).count(); }
double after(TimePoint t) { return secs(t - t0); }

PollPolicy policy() {
  PollPolicy p;
  p.first_poll = 5s;
  p.webhook_grace = 30s;
  p.max_interval = 600s;
  return p;
}

}  // namespace

TEST_CASE("quantile interpolates between the known points and is flat outside them") {
  auto t = uniform_30_90();
  CHECK(quantile(t, 0.0) == 36s);
  CHECK(quantile(t, 0.10) == 36s);
  CHECK(quantile(t, 0.50) == 60s);
  CHECK(secs(quantile(t, 0.30)) == doctest::Approx(48.0));  // 45 + (60 - 45) * 0.05 / 0.25
  CHECK(secs(quantile(t, 0.95)) == doctest::Approx(87.0));  // 84 + 5.4 * 5/9
  CHECK(quantile(t, 1.0) == std::chrono::milliseconds(89400));
}

TEST_CASE("a kind with few samples borrows from its mode and duration, else from any kind") {
  std::map<GenerationKey, GenerationTimes> kinds;
  kinds[{"standard", 5, ""}] = {50, 10s, 11s, 12s, 13s, 14s, 15s};
  kinds[{"standard", 5, "2.1"}] = {3, 1s, 1s, 1s, 1s, 1s, 1s};  // too few of its own
  kinds[{"professional", 10, ""}] = {90, 100s, 110s, 120s, 130s, 140s, 150s};
  GenerationModel model(kinds);
  CHECK(model.find({"standard", 5, ""})->p50 == 12s);
  CHECK(model.find({"standard", 5, "2.1"})->p50 == 12s);       // same mode and duration
  CHECK(model.find({"professional", 5, "1.6"})->p50 == 120s);  // any kind: the most samples
  CHECK(model.samples() == 143);
  CHECK_FALSE(GenerationModel{}.find({"standard", 5, ""}).has_value());
  std::map<GenerationKey, GenerationTimes> sparse;
  sparse[{"standard", 5, ""}] = {GenerationModel::min_samples - 1, 1s, 1s, 1s, 1s, 1s, 1s};
  CHECK_FALSE(GenerationModel(sparse).find({"standard", 5, ""}).has_value());
}

TEST_CASE("without webhooks polls go to the learned quantiles, then back off by half the job's age") {
  PollFacts job{t0, 0, false, uniform_30_90()};
  CHECK(after(next_poll_at(job, t0, policy())) == doctest::Approx(48.0));  // 30 %
  job.polls_sent = 1;
  CHECK(after(next_poll_at(job, t0 + 48s, policy())) == doctest::Approx(63.0));  // 55 %: 60 + 15 * 0.2
  job.polls_sent = 2;
  CHECK(after(next_poll_at(job, t0 + 63s, policy())) == doctest::Approx(75.0));  // 75 %
  job.polls_sent = 3;
  CHECK(after(next_poll_at(job, t0 + 75s, policy())) == doctest::Approx(84.0));  // 90 %
  job.polls_sent = 4;
  CHECK(after(next_poll_at(job, t0 + 84s, policy())) == doctest::Approx(88.2));  // 97 %: 84 + 5.4 * 7/9
  job.polls_sent = 5;                                             // past the schedule
  CHECK(next_poll_at(job, t0 + 88s, policy()) == t0 + 88s + 44s);
  job.polls_sent = 6;
  CHECK(next_poll_at(job, t0 + 2000s, policy()) == t0 + 2000s + 600s);  // capped
}

TEST_CASE("a poll sent late, or quantiles close together, never puts two polls of a job within 2 s") {
  GenerationTimes tight{100, 10s, 10s, 10500ms, 11s, 11s, 11s};
  PollFacts job{t0, 1, false, tight};
  // The 55 % point (10.6 s) is 0.6 s after the poll being sent at 10 s.
  CHECK(next_poll_at(job, t0 + 10s, policy()) == t0 + 12s);
  // The budget delayed this poll past the point the next one aims at.
  job.polls_sent = 2;
  CHECK(next_poll_at(job, t0 + 30s, policy()) == t0 + 32s);
}

TEST_CASE("without history: the first poll after a few seconds, then at half the job's age") {
  PollFacts job{t0, 0, false, std::nullopt};
  CHECK(next_poll_at(job, t0, policy()) == t0 + 5s);
  job.polls_sent = 1;
  CHECK(next_poll_at(job, t0 + 5s, policy()) == t0 + 7500ms);
  job.polls_sent = 2;
  CHECK(next_poll_at(job, t0 + 8s, policy()) == t0 + 12s);
  job.polls_sent = 3;
  CHECK(next_poll_at(job, t0 + 60s, policy()) == t0 + 90s);
}

TEST_CASE("with a webhook the first poll waits until it is late: the 99 % time plus the grace") {
  PollFacts job{t0, 0, true, uniform_30_90()};
  CHECK(next_poll_at(job, t0, policy()) == t0 + 89400ms + 30s);
  job.times.reset();  // no history: first_after plus the grace
  CHECK(next_poll_at(job, t0, policy()) == t0 + 35s);
  // Late: back off from 5 s, doubling, capped.
  job.polls_sent = 1;
  CHECK(next_poll_at(job, t0 + 35s, policy()) == t0 + 40s);
  job.polls_sent = 3;
  CHECK(next_poll_at(job, t0 + 100s, policy()) == t0 + 120s);
  job.polls_sent = 20;
  CHECK(next_poll_at(job, t0 + 100s, policy()) == t0 + 700s);
  CHECK(late_webhook_backoff(0, policy()) == 5s);
}

TEST_CASE("polls at the quantiles find generation times of a realistic spread soon, with few polls") {
  // Generation times drawn from 30..90 s; the schedule above, polled on time.
  std::mt19937 random(42);
  std::uniform_real_distribution<double> seconds(30.0, 90.0);
  const auto times = uniform_30_90();
  double polls = 0, delay = 0, generation = 0;
  const int jobs = 10000;
  for (int i = 0; i < jobs; ++i) {
    const auto done = t0 + std::chrono::duration_cast<Duration>(std::chrono::duration<double>(seconds(random)));
    PollFacts job{t0, 0, false, times};
    TimePoint at = next_poll_at(job, t0, policy());
    while (true) {
      ++job.polls_sent;
      if (at >= done) break;
      at = next_poll_at(job, at, policy());
    }
    polls += job.polls_sent;
    delay += std::chrono::duration<double>(at - done).count();
    generation += std::chrono::duration<double>(done - t0).count();
  }
  CHECK(polls / jobs < 3.0);                    // about 2.5
  CHECK(delay / generation < 0.15);             // found within 15 % of the time it took
}

TEST_CASE("polls take the whole request rate while capacity holds dispatch, their share otherwise") {
  using namespace klingq::ratelimit;
  LimiterSettings settings;
  settings.poll_share = 0.2;
  auto count_polls = [&](AccountState s, bool hold) {
    roll(s, t0, settings);
    std::int64_t polls = 0;
    for (TimePoint now = t0; now < t0 + 1min; now += 100ms) {
      if (hold && (now - t0) % 10s == Duration::zero()) note_claim(s, true, now);  // the claimer re-checks
      auto a = poll_allowance(s, 100, now, settings);
      if (a.count > 0) {
        take_polls(s, a.count, now, settings);
        polls += a.count;
      }
    }
    return polls;
  };
  const auto plan = from_plan(600, 5, 0);
  CHECK(count_polls(plan, false) <= 600 * 0.2 + 1);
  CHECK(count_polls(plan, true) >= 600 - 2);
  CHECK(count_polls(plan, true) <= 600 + 1);  // never beyond the request rate

  // A claim that is not held by capacity ends it at once; a stale hold ends by itself.
  auto s = plan;
  note_claim(s, true, t0);
  CHECK(capacity_holds_dispatch(s, t0 + 1s));
  CHECK_FALSE(capacity_holds_dispatch(s, t0 + dispatch_hold_memory + 1s));
  note_claim(s, false, t0 + 2s);
  CHECK_FALSE(capacity_holds_dispatch(s, t0 + 2s));
}

TEST_CASE("while capacity holds, polls and submits together still keep to the request pace") {
  using namespace klingq::ratelimit;
  LimiterSettings settings;
  auto s = from_plan(60, 5, 0);
  roll(s, t0, settings);
  std::int64_t requests = 0;
  for (TimePoint now = t0; now < t0 + 5min; now += 50ms) {
    note_claim(s, true, now);
    auto submits = submit_allowance(s, 4, 1, now, settings);  // one slot left, sometimes
    if (submits.count > 0) {
      take_submits(s, submits.count, now, settings);
      requests += submits.count;
    }
    auto polls = poll_allowance(s, 100, now, settings);
    if (polls.count > 0) {
      take_polls(s, polls.count, now, settings);
      requests += polls.count;
    }
  }
  CHECK(requests <= 60 * 5 + 1);
  CHECK(requests >= 60 * 5 - 2);
}
