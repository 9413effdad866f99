// klingq.instances (who is alive), klingq.job_counts (jobs per state without a scan) and
// klingq.batches' budgets: the statements behind the heartbeat and the budget check.
#pragma once

#include "db/prices.hpp"

#include <pqxx/transaction_base>

#include <cstdint>
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
}  // namespace instances

namespace job_counts {
// Folds the append-only per-state deltas back into one row per state.
void fold(pqxx::transaction_base& tx);
std::vector<std::pair<std::string, std::int64_t>> by_state(pqxx::transaction_base& tx);
}  // namespace job_counts

namespace batches {
// (batch, credits it may still commit) for every budgeted batch.
std::vector<std::pair<std::string, std::int64_t>> budgets_remaining(pqxx::transaction_base& tx,
                                                                    const Prices& prices);
}  // namespace batches

}  // namespace klingq::db
