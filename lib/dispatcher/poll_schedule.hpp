// When to ask about a submitted job, decided without I/O: from how long generation takes
// for jobs of its kind (the account's own history, klingq.generation_times), when it was
// submitted, how many polls it has had, and whether a webhook is expected.
//
// Without webhooks the polls go where the job is likely done: at the learned quantiles
// (30 %, 55 %, 75 %, 90 %, 97 % of generation times), so most jobs are found within a
// few seconds of their end with about two and a half polls each; a job past them is
// polled at half its age, growing. Until there is history the seed's advice holds: the
// first poll after a few seconds (poll.first_after_seconds), then at half the job's age.
// With webhooks a poll only finds what a lost webhook did not say: the first comes once
// the webhook is late (the 99 % quantile plus poll.webhook_grace_seconds; without history
// first_after plus the grace), then backing off. Never two polls of a job within 2 s
// (poll.min_interval_ms).
#pragma once

#include "util/clock.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace klingq::dispatcher {

// The kind of job generation time is learned for (version "" = the API's default).
struct GenerationKey {
  std::string mode;
  int duration = 5;
  std::string version;
  friend bool operator<(const GenerationKey& a, const GenerationKey& b) {
    return std::tie(a.mode, a.duration, a.version) < std::tie(b.mode, b.duration, b.version);
  }
};

// Quantiles of generation time (submit to done) of one kind.
struct GenerationTimes {
  std::int64_t samples = 0;
  Duration p10{}, p25{}, p50{}, p75{}, p90{}, p99{};
};

// The generation time at `level` in [0, 1], interpolated linearly between the known
// quantiles (flat below the 10 % and above the 99 % one).
Duration quantile(const GenerationTimes& times, double level);

// Every kind's quantiles. A kind with too few samples of its own borrows those of the
// kind of the same mode and duration with the most samples, else of any kind: a
// professional 10 s job is a better guess for another version than nothing.
class GenerationModel {
 public:
  static constexpr std::int64_t min_samples = 5;
  GenerationModel() = default;
  explicit GenerationModel(std::map<GenerationKey, GenerationTimes> by_key);
  // nullopt: no kind has min_samples yet.
  std::optional<GenerationTimes> find(const GenerationKey& key) const;
  const std::map<GenerationKey, GenerationTimes>& kinds() const { return by_key_; }
  std::int64_t samples() const;  // over all kinds

 private:
  std::map<GenerationKey, GenerationTimes> by_key_;
};

struct PollPolicy {
  Duration first_poll = std::chrono::seconds(5);      // no history: poll.first_after_seconds
  Duration webhook_grace = std::chrono::seconds(30);  // poll.webhook_grace_seconds, once
  Duration max_interval = std::chrono::seconds(600);  // poll.max_interval_seconds
  Duration min_interval = std::chrono::seconds(2);    // poll.min_interval_ms: the seed's pace
};

// The quantile levels polls aim at, in order, when webhooks are off.
inline constexpr std::array<double, 5> poll_levels{0.30, 0.55, 0.75, 0.90, 0.97};

// What the schedule needs to know of one job.
struct PollFacts {
  TimePoint submitted_at;
  int polls_sent = 0;       // including one being sent now
  bool webhook = false;     // its submit named a webhookUrl
  std::optional<GenerationTimes> times;
};

// When the job's next poll is due, at `now` (the submit's record, or a poll being sent).
TimePoint next_poll_at(const PollFacts& job, TimePoint now, const PollPolicy& policy);

// After `polls_before` + 1 polls of a job whose webhook is late: 5 s, doubling, up to
// max_interval.
Duration late_webhook_backoff(int polls_before, const PollPolicy& policy);

}  // namespace klingq::dispatcher
