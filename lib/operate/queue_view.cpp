// The queue as the console and the CLI show it; see queue_view.hpp.
#include "operate/queue_view.hpp"

#include "db/generation.hpp"
#include "db/instances.hpp"

#include <algorithm>
#include <map>

namespace klingq::operate {
namespace {

std::size_t state_index(const std::string& state) {
  for (std::size_t i = 0; i < job_states.size(); ++i) {
    if (state == job_states[i]) return i;
  }
  return 0;
}

// Where the provider's day ends when the row does not say: the learned or configured
// start after 00:00 UTC, next after now.
TimePoint day_end(const db::console::Account& a, const EtaSettings& s) {
  if (a.day_reset_at) return from_epoch_ms(*a.day_reset_at);
  const auto now = from_epoch_ms(a.now);
  const auto start = std::chrono::milliseconds(a.day_start_ms.value_or(s.default_day_start_ms));
  auto candidate = std::chrono::time_point_cast<Duration>(std::chrono::floor<std::chrono::days>(now) + start);
  while (candidate <= now) candidate += std::chrono::days(1);
  return candidate;
}

}  // namespace

QueueView queue_view(pqxx::transaction_base& tx, const EtaSettings& s, bool active_only) {
  auto account = db::console::account(tx);
  auto counts = db::console::batch_counts(tx, s.prices);
  auto budgets = db::batches::budgets_remaining(tx, s.prices);
  auto paused = db::console::paused_batches(tx);
  return build_view(std::move(account), counts, budgets, paused, learned_generation_seconds(tx), s, active_only);
}

std::optional<double> learned_generation_seconds(pqxx::transaction_base& tx) {
  double weighted = 0;
  std::int64_t samples = 0;
  for (const auto& row : db::generation::select(tx)) {
    weighted += static_cast<double>(row.p50_ms) * static_cast<double>(row.samples);
    samples += row.samples;
  }
  if (samples == 0) return std::nullopt;
  return weighted / static_cast<double>(samples) / 1000.0;
}

QueueView build_view(std::optional<db::console::Account> account, const std::vector<db::console::BatchStateCount>& counts,
                     const std::vector<std::pair<std::string, std::int64_t>>& budgets, const PausedBatches& paused,
                     std::optional<double> learned_generation, const EtaSettings& s, bool active_only) {
  QueueView view;
  view.generation_seconds = learned_generation.value_or(s.generation_seconds);
  view.generation_learned = learned_generation.has_value();
  view.account = std::move(account);
  view.now = view.account ? from_epoch_ms(view.account->now) : Clock::now();
  if (view.account) view.day_ends = day_end(*view.account, s);

  struct Extra {
    std::int64_t queued_cost = 0;
    std::optional<std::int64_t> priority;
  };
  std::map<std::optional<std::string>, std::pair<BatchView, Extra>> batches;
  for (const auto& c : counts) {
    auto& [b, extra] = batches[c.batch];
    b.batch = c.batch;
    b.states[state_index(c.state)] = c.jobs;
    b.total += c.jobs;
    if (c.state == "submitted" || c.state == "completed") b.credits_spent += c.credits;
    if (c.state == "queued") {
      extra.priority = c.queued_priority;
      extra.queued_cost = c.queued_cost;
    }
    b.last_change = std::max(b.last_change, c.last_change.value_or(0));
  }
  std::map<std::string, std::int64_t> left(budgets.begin(), budgets.end());
  std::vector<eta::BatchQueue> queues;
  const std::int64_t now_ms = to_epoch_ms(view.now);
  for (auto& [label, entry] : batches) {
    auto& [b, extra] = entry;
    if (active_only && b.queued() == 0 && b.in_flight() == 0 && now_ms - b.last_change >= 24LL * 3600 * 1000) continue;
    if (label) {
      if (auto it = left.find(*label); it != left.end()) b.budget_left = it->second;
    }
    for (const auto& [which, reason] : paused) {
      if (which == label) {
        b.paused = true;
        b.paused_reason = reason;
      }
    }
    queues.push_back({b.queued(), b.in_flight(), extra.queued_cost, extra.priority, b.budget_left, b.paused});
    view.batches.push_back(b);
  }
  if (view.account) {
    auto estimates = eta::estimate_batches(eta_account(view, s), queues, view.now);
    for (std::size_t i = 0; i < estimates.size(); ++i) view.batches[i].eta = estimates[i];
  }
  return view;
}

eta::Account eta_account(const QueueView& view, const EtaSettings& s) {
  const auto& a = *view.account;
  eta::Account acc;
  acc.limits.rpm = a.rpm_limit;
  acc.limits.window_seconds = s.window_seconds;
  acc.limits.requests_per_job = s.requests_per_job;
  acc.limits.parallel = a.parallel_limit;
  acc.limits.daily = a.day_limit;
  acc.limits.day_used = a.day_used;
  acc.limits.day_ends = view.day_ends;
  acc.balance = a.balance;
  acc.reserve = s.reserve;
  acc.generation_seconds = view.generation_seconds;
  acc.paused = a.paused;
  acc.halted = a.halted_reason.has_value();
  return acc;
}

}  // namespace klingq::operate
