// The poll schedule and the generation-time model's lookup.
#include "dispatcher/poll_schedule.hpp"

#include <algorithm>

namespace klingq::dispatcher {
namespace {

Duration scaled(Duration d, double factor) {
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double, Duration::period>(
      static_cast<double>(d.count()) * factor));
}

// Past the schedule (or without history): half the job's age, so polls grow by half each
// time and a job polled late is never polled more than about log1.5 of its age times.
Duration age_backoff(const PollFacts& job, TimePoint now, const PollPolicy& policy) {
  return std::clamp<Duration>((now - job.submitted_at) / 2, policy.min_interval,
                              std::max(policy.min_interval, policy.max_interval));
}

}  // namespace

Duration quantile(const GenerationTimes& t, double level) {
  const std::array<std::pair<double, Duration>, 6> points{
      {{0.10, t.p10}, {0.25, t.p25}, {0.50, t.p50}, {0.75, t.p75}, {0.90, t.p90}, {0.99, t.p99}}};
  if (level <= points.front().first) return points.front().second;
  for (std::size_t i = 1; i < points.size(); ++i) {
    if (level <= points[i].first) {
      const auto& [l0, d0] = points[i - 1];
      const auto& [l1, d1] = points[i];
      return d0 + scaled(d1 - d0, (level - l0) / (l1 - l0));
    }
  }
  return points.back().second;
}

GenerationModel::GenerationModel(std::map<GenerationKey, GenerationTimes> by_key) : by_key_(std::move(by_key)) {}

std::int64_t GenerationModel::samples() const {
  std::int64_t n = 0;
  for (const auto& [key, times] : by_key_) n += times.samples;
  return n;
}

std::optional<GenerationTimes> GenerationModel::find(const GenerationKey& key) const {
  if (auto it = by_key_.find(key); it != by_key_.end() && it->second.samples >= min_samples) return it->second;
  const GenerationTimes* same_shape = nullptr;  // same mode and duration, most samples
  const GenerationTimes* any = nullptr;         // most samples of all
  for (const auto& [k, times] : by_key_) {
    if (times.samples < min_samples) continue;
    if (k.mode == key.mode && k.duration == key.duration && (!same_shape || times.samples > same_shape->samples)) {
      same_shape = &times;
    }
    if (!any || times.samples > any->samples) any = &times;
  }
  if (same_shape) return *same_shape;
  if (any) return *any;
  return std::nullopt;
}

Duration late_webhook_backoff(int polls_before, const PollPolicy& policy) {
  // A lost delivery is rare; a provider that stopped sending them is not, and then polls
  // carry the load, backing off.
  const double seconds = 5.0 * static_cast<double>(1 << std::clamp(polls_before, 0, 16));
  return std::max(policy.min_interval,
                  std::min(policy.max_interval, std::chrono::duration_cast<Duration>(std::chrono::duration<double>(seconds))));
}

TimePoint next_poll_at(const PollFacts& job, TimePoint now, const PollPolicy& policy) {
  const TimePoint earliest = now + policy.min_interval;
  TimePoint at;
  if (job.webhook) {
    if (job.polls_sent == 0) {
      at = job.submitted_at + (job.times ? quantile(*job.times, 0.99) : policy.first_poll) + policy.webhook_grace;
    } else {
      at = now + late_webhook_backoff(job.polls_sent - 1, policy);
    }
  } else if (job.times && job.polls_sent < static_cast<int>(poll_levels.size())) {
    at = job.submitted_at + quantile(*job.times, poll_levels[static_cast<std::size_t>(job.polls_sent)]);
  } else if (job.polls_sent == 0) {
    at = job.submitted_at + policy.first_poll;
  } else {
    at = now + age_backoff(job, now, policy);
  }
  return std::max(at, earliest);
}

}  // namespace klingq::dispatcher
