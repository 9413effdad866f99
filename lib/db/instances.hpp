// klingq.instances (who is alive), klingq.job_counts and batch_counts (jobs per state and
// per batch without a scan) and klingq.batches' budgets: the statements behind the
// heartbeat and the budget check.
#pragma once

#include "db/prices.hpp"

#include <pqxx/transaction_base>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace klingq::db {

namespace instances {
void upsert(pqxx::transaction_base& tx, const std::string& id, const std::string& host, int pid,
            const std::string& version, const std::string& status_json);
void remove(pqxx::transaction_base& tx, const std::string& id);
// Instances that heartbeat within the last 30 s.
std::int64_t count_live(pqxx::transaction_base& tx);
// The id of the oldest live instance (the metrics publisher), if any is live.
std::optional<std::string> publisher(pqxx::transaction_base& tx);
}  // namespace instances

namespace job_counts {
// Folds the append-only per-state deltas back into one row per state.
void fold(pqxx::transaction_base& tx);
std::vector<std::pair<std::string, std::int64_t>> by_state(pqxx::transaction_base& tx);
// Folds klingq.batch_counts and klingq.event_minutes (schema 015) when no other instance
// is folding them; false: one is, and nothing was done.
bool fold_batch_counts(pqxx::transaction_base& tx);
// VACUUM of those two tables: outside a transaction (a pqxx::nontransaction).
void vacuum_batch_counts(pqxx::transaction_base& tx);
}  // namespace job_counts

namespace batches {
// (batch, credits it may still commit) for every budgeted batch.
std::vector<std::pair<std::string, std::int64_t>> budgets_remaining(pqxx::transaction_base& tx,
                                                                    const Prices& prices);
}  // namespace batches

}  // namespace klingq::db
