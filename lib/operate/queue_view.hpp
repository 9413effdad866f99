// What the console's overview and `klingq status` / `klingq estimate` both show of the
// queue: the account row, every batch's jobs by state, spend and budget, and its ETA
// (lib/eta), gathered in one place so the page and the terminal agree. Three
// statements: the account row, the per-(batch, state) counts, the budgets, the paused
// batches and the learned generation time.
#pragma once

#include "db/console.hpp"
#include "db/prices.hpp"
#include "eta/eta.hpp"

#include <pqxx/transaction_base>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace klingq::operate {

inline constexpr std::array<const char*, 6> job_states = {"queued",    "dispatching", "submitted",
                                                          "completed", "failed",      "cancelled"};

// What the ETA needs from the configuration.
struct EtaSettings {
  db::Prices prices;
  std::int64_t reserve = 0;               // credits.reserve
  double window_seconds = 60;             // limits.window_seconds
  double requests_per_job = 1.0;          // 1 with webhooks; 1 / (1 - poll.share) when polled
  // Until klingq.generation_times has a p50: an assumption (API.md states no figure; the
  // simulator's default is 30 to 90 s). Not poll.first_after_seconds, which is when to
  // look first (5 s), not how long a video takes.
  double generation_seconds = 60;
  std::int64_t default_day_start_ms = 0;  // limits.day_starts_at, for a day not learned yet
};

struct BatchView {
  std::optional<std::string> batch;           // none: unlabelled jobs
  std::array<std::int64_t, 6> states{};       // by job_states
  std::int64_t total = 0;
  std::int64_t credits_spent = 0;             // credit_cost of submitted and completed jobs
  std::int64_t last_change = 0;               // epoch ms
  std::optional<std::int64_t> budget_left;
  bool paused = false;                        // klingq batch pause
  std::optional<std::string> paused_reason;
  std::optional<eta::Estimate> eta;           // none before klingqd made the account row
  std::int64_t queued() const { return states[0]; }
  std::int64_t in_flight() const { return states[1] + states[2]; }
  std::int64_t finished() const { return states[3] + states[4] + states[5]; }
};

struct QueueView {
  std::optional<db::console::Account> account;
  TimePoint now{};        // the database's clock
  TimePoint day_ends{};   // when the provider's day begins again
  std::vector<BatchView> batches;  // unlabelled first, then by label
  double generation_seconds = 0;   // what the ETA took: learned (klingq.generation_times) or configured
  bool generation_learned = false;
};

// The sample-weighted p50 of klingq.generation_times (issue 15's learned figures), in
// seconds; none before any completion was learned.
std::optional<double> learned_generation_seconds(pqxx::transaction_base& tx);

// What the ETA knows of the account: the view's limits, day end, balance and generation
// time, with the settings' window, requests per job and reserve. Needs view.account.
eta::Account eta_account(const QueueView& view, const EtaSettings& settings);

// `active_only`: only batches with queued or in-flight jobs or a change in the last day.
QueueView queue_view(pqxx::transaction_base& tx, const EtaSettings& settings, bool active_only);
// The same from rows read before (the console reads the counts less often than the
// account row: at a million jobs they cost a table scan).
using PausedBatches = std::vector<std::pair<std::optional<std::string>, std::optional<std::string>>>;
QueueView build_view(std::optional<db::console::Account> account, const std::vector<db::console::BatchStateCount>& counts,
                     const std::vector<std::pair<std::string, std::int64_t>>& budgets, const PausedBatches& paused,
                     std::optional<double> learned_generation, const EtaSettings& settings, bool active_only);

}  // namespace klingq::operate
