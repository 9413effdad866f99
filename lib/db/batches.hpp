// klingq.batches: per-batch settings (weight, max_parallel, daily_cap, budget, paused)
// and the fair-share state the claim keeps there (pass, active, day count) with the
// scheduler's virtual time (klingq.batch_share_clock). Typed statements only: what a
// share is and who goes next is decided in lib/dispatcher/shares.
//
// A batch is named by its label, or std::nullopt for the unlabelled jobs; the claim's
// statements use the key coalesce(batch, ''), where "" is the unlabelled batch (a label
// is never empty: jobs_batch_length).
#pragma once

#include "db/prices.hpp"
#include "util/clock.hpp"

#include <pqxx/transaction_base>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace klingq::db::batches {

// --- the operator's statements (klingq batch ...) ---

// A nullable setting to change: nullopt leaves it; a Change of nullopt clears it.
template <typename T>
using Change = std::optional<std::optional<T>>;

struct Settings {
  std::optional<std::string> batch;
  int weight = 1;
  std::optional<std::int64_t> max_parallel;
  std::optional<std::int64_t> daily_cap;
  std::optional<std::int64_t> budget;
  bool paused = false;
};
// Creates the batch's row or changes what is given; returns the row as it is now.
// Throws pqxx::check_violation (named batches_*) for a value the table refuses.
Settings set(pqxx::transaction_base& tx, const std::optional<std::string>& batch, std::optional<int> weight,
             const Change<std::int64_t>& max_parallel, const Change<std::int64_t>& daily_cap,
             const Change<std::int64_t>& budget);
void set_paused(pqxx::transaction_base& tx, const std::optional<std::string>& batch, bool paused,
                const std::optional<std::string>& reason);

struct Listed {
  Settings settings;
  std::optional<std::string> paused_reason;
  std::int64_t queued = 0;
  std::int64_t in_flight = 0;           // dispatching or submitted
  std::int64_t submits_last_hour = 0;
  std::optional<double> share_last_hour;  // of every batch's submits in the last hour
  std::string created_at;               // time stamp text
  std::string updated_at;
};
// Unlabelled first, then by label; `batch` set: that batch only.
std::vector<Listed> list(pqxx::transaction_base& tx, const std::optional<std::string>& batch);

// --- the claim's statements (run under the account lock) ---

struct Candidate {
  std::string key;  // "" = unlabelled
  bool unlabelled = false;
  int weight = 1;
  std::optional<std::int64_t> max_parallel;
  std::optional<std::int64_t> daily_cap;
  std::optional<std::int64_t> budget;
  double pass = 0;
  std::int64_t day_count = 0;
  std::optional<std::int64_t> day_key;
};
// The highest priority with a runnable row below `below` (nullopt: any).
std::optional<int> top_priority(pqxx::transaction_base& tx, std::optional<int> below);
double share_clock(pqxx::transaction_base& tx);
// One page of the walk: `window` unpaused active batches from `offset`, lowest pass first.
std::vector<Candidate> window(pqxx::transaction_base& tx, std::int64_t window, std::int64_t offset);
// The first `limit` of `keys` (in their order) with a runnable row at `priority`, each with
// its runnable rows counted up to `count_to` (a batch at `count_to` may have more).
struct Runnable {
  std::string key;
  std::int64_t rows = 0;
};
std::vector<Runnable> runnable(pqxx::transaction_base& tx, const std::vector<std::string>& keys, int priority,
                               std::int64_t limit, std::int64_t count_to);
// Jobs dispatching or submitted per key, for the keys given (absent: none).
std::vector<std::pair<std::string, std::int64_t>> in_flight(pqxx::transaction_base& tx,
                                                            const std::vector<std::string>& keys);

struct Head {
  std::string key;
  std::int64_t id = 0;
  std::int64_t expected_cost = 0;
  TimePoint run_after;
  std::optional<std::string> batch;
  bool day_counted = false;
};
// Up to counts[i] runnable rows of keys[i] at `priority`, locked (SKIP LOCKED), in the
// order of `keys` and then each batch's claim order.
std::vector<Head> heads(pqxx::transaction_base& tx, const std::vector<std::string>& keys,
                        const std::vector<std::int64_t>& counts, int priority, const Prices& prices);

struct Saved {
  std::string key;
  double pass = 0;
  std::int64_t day_count = 0;
  std::optional<std::int64_t> day_key;
};
// Locks the rows of `keys` in key order, skipping those another transaction holds;
// returns the keys locked.
std::vector<std::string> lock(pqxx::transaction_base& tx, const std::vector<std::string>& keys);
void save_shares(pqxx::transaction_base& tx, const std::vector<Saved>& batches, double vtime);
// Locks up to `limit` active batches of the lowest pass that nobody else holds, and
// returns their keys (for the sweep of batches whose jobs left the queue otherwise).
std::vector<std::string> lock_lowest_active(pqxx::transaction_base& tx, std::int64_t limit);
// Clears `active` on the batches among `keys` (locked by this transaction already)
// without a queued job; returns the keys cleared.
std::vector<std::string> deactivate_idle(pqxx::transaction_base& tx, const std::vector<std::string>& keys);

// VACUUM klingq.batches (a command no transaction may hold: pass a pqxx::nontransaction).
void vacuum(pqxx::transaction_base& tx);

}  // namespace klingq::db::batches
