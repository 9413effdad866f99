// See instances.hpp.
#include "db/instances.hpp"

#include "db/sql_statements.hpp"
#include "db/statement.hpp"

namespace klingq::db {
using namespace detail;

void instances::upsert(pqxx::transaction_base& tx, const std::string& id, const std::string& host, int pid,
                       const std::string& version, const std::string& status_json) {
  exec(tx, sql::instances_upsert, id, host, pid, version, status_json);
}

void instances::remove(pqxx::transaction_base& tx, const std::string& id) { exec(tx, sql::instances_delete, id); }

std::int64_t instances::count_live(pqxx::transaction_base& tx) {
  return exec1(tx, sql::instances_count_live)[0].as<long long>();
}

std::optional<std::string> instances::publisher(pqxx::transaction_base& tx) {
  auto rows = exec(tx, sql::instances_get_publisher);
  if (rows.empty()) return std::nullopt;
  return rows[0][0].as<std::string>();
}

void job_counts::fold(pqxx::transaction_base& tx) { exec(tx, sql::job_counts_fold); }

bool job_counts::fold_batch_counts(pqxx::transaction_base& tx) {
  if (!exec1(tx, sql::counts_try_lock_fold)[0].as<bool>()) return false;
  exec(tx, sql::batch_counts_fold);
  exec(tx, sql::event_minutes_fold);
  return true;
}

void job_counts::vacuum_batch_counts(pqxx::transaction_base& tx) { exec(tx, sql::counts_vacuum); }

std::vector<std::pair<std::string, std::int64_t>> job_counts::by_state(pqxx::transaction_base& tx) {
  std::vector<std::pair<std::string, std::int64_t>> out;
  for (const auto& row : exec(tx, sql::job_counts_by_state)) {
    out.emplace_back(row[0].as<std::string>(), row[1].as<long long>());
  }
  return out;
}

std::vector<std::pair<std::string, std::int64_t>> batches::budgets_remaining(pqxx::transaction_base& tx,
                                                                             const Prices& p) {
  std::vector<std::pair<std::string, std::int64_t>> out;
  for (const auto& row : exec(tx, sql::batches_get_budgets_remaining, static_cast<long long>(p.standard_5),
                              static_cast<long long>(p.standard_10), static_cast<long long>(p.professional_5),
                              static_cast<long long>(p.professional_10))) {
    out.emplace_back(row[0].as<std::string>(), row[1].as<long long>());
  }
  return out;
}

}  // namespace klingq::db
