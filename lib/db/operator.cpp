// The operator CLI's statements; see operator.hpp.
#include "db/operator.hpp"

#include "db/sql_statements.hpp"
#include "db/statement.hpp"

namespace klingq::db {
using namespace detail;

namespace {
std::optional<double> double_of(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<double>();
}
std::vector<std::int64_t> ids_of(const pqxx::result& rows) {
  std::vector<std::int64_t> ids;
  for (const auto& row : rows) ids.push_back(row[0].as<long long>());
  return ids;
}
}  // namespace

std::vector<queue_summary::Row> queue_summary::select(pqxx::transaction_base& tx,
                                                      const std::optional<std::string>& batch) {
  std::vector<Row> out;
  for (const auto& r : exec(tx, sql::queue_summary_select, batch)) {
    Row row;
    row.state = r[0].as<std::string>();
    row.batch = text_of(r[1]);
    row.jobs = r[2].as<long long>();
    row.credit_cost = r[3].as<long long>();
    row.oldest_created_at = r[4].c_str();
    row.oldest_age_seconds = double_of(r[5]);
    out.push_back(std::move(row));
  }
  return out;
}

std::vector<jobs_admin::Listed> jobs_admin::list(pqxx::transaction_base& tx, const std::optional<std::string>& state,
                                                 const std::optional<std::string>& batch, std::int64_t limit) {
  std::vector<Listed> out;
  for (const auto& r : exec(tx, sql::jobs_list, state, batch, static_cast<long long>(limit))) {
    Listed job;
    job.id = r[0].as<long long>();
    job.state = r[1].as<std::string>();
    job.attempts = r[2].as<long long>();
    job.remote_id = text_of(r[3]);
    job.credit_cost = int_of(r[4]);
    job.prompt = r[5].as<std::string>();
    job.batch = text_of(r[6]);
    job.error_class = text_of(r[7]);
    job.error_message = text_of(r[8]);
    job.created_at = r[9].as<std::string>();
    job.url = text_of(r[10]);
    out.push_back(std::move(job));
  }
  return out;
}

std::vector<std::int64_t> jobs_admin::cancel_by_ids(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids) {
  return ids_of(exec(tx, sql::jobs_cancel_by_ids, ids_array(ids)));
}

std::vector<std::int64_t> jobs_admin::cancel_by_batch(pqxx::transaction_base& tx, const std::string& batch) {
  return ids_of(exec(tx, sql::jobs_cancel_by_batch, batch));
}

std::vector<std::int64_t> jobs_admin::cancel_unlabelled(pqxx::transaction_base& tx) {
  return ids_of(exec(tx, sql::jobs_cancel_unlabelled));
}

std::vector<std::int64_t> jobs_admin::retry_by_ids(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids) {
  return ids_of(exec(tx, sql::jobs_retry_by_ids, ids_array(ids)));
}

std::vector<std::int64_t> jobs_admin::retry_by_selection(pqxx::transaction_base& tx,
                                                         const std::optional<std::string>& batch, bool failed_only,
                                                         bool unlabelled) {
  return ids_of(exec(tx, sql::jobs_retry_by_selection, unlabelled ? std::nullopt : batch, failed_only, unlabelled));
}

std::vector<jobs_admin::Current> jobs_admin::state_by_ids(pqxx::transaction_base& tx,
                                                          const std::vector<std::int64_t>& ids) {
  std::vector<Current> out;
  for (const auto& r : exec(tx, sql::jobs_get_state_by_ids, ids_array(ids))) {
    out.push_back(Current{r[0].as<long long>(), r[1].as<std::string>(), text_of(r[2]), text_of(r[3])});
  }
  return out;
}

std::vector<std::pair<std::string, std::int64_t>> jobs_admin::count_waiting(pqxx::transaction_base& tx,
                                                                            const std::optional<std::string>& batch) {
  std::vector<std::pair<std::string, std::int64_t>> out;
  for (const auto& r : exec(tx, sql::jobs_count_waiting, batch)) {
    out.emplace_back(r[0].as<std::string>(), r[1].as<long long>());
  }
  return out;
}

std::vector<std::pair<std::string, std::int64_t>> jobs_admin::count_batch_by_state(pqxx::transaction_base& tx,
                                                                                   const std::string& batch) {
  std::vector<std::pair<std::string, std::int64_t>> out;
  for (const auto& r : exec(tx, sql::jobs_count_batch_by_state, batch)) {
    out.emplace_back(r[0].as<std::string>(), r[1].as<long long>());
  }
  return out;
}

std::vector<std::pair<std::string, std::int64_t>> jobs_admin::count_unlabelled_by_state(pqxx::transaction_base& tx) {
  std::vector<std::pair<std::string, std::int64_t>> out;
  for (const auto& r : exec(tx, sql::jobs_count_unlabelled_by_state)) {
    out.emplace_back(r[0].as<std::string>(), r[1].as<long long>());
  }
  return out;
}

bool jobs_admin::batch_exists(pqxx::transaction_base& tx, const std::string& batch) {
  return exec1(tx, sql::batches_exists, batch)[0].as<bool>();
}

std::vector<jobs_admin::QueuedAtPrice> jobs_admin::count_queued_by_price(pqxx::transaction_base& tx,
                                                                         const std::optional<std::string>& batch) {
  std::vector<QueuedAtPrice> out;
  for (const auto& r : exec(tx, sql::jobs_count_queued_by_price, batch)) {
    out.push_back(QueuedAtPrice{r[0].as<std::string>(), r[1].as<int>(), r[2].as<long long>()});
  }
  return out;
}

namespace {
// RETURNING halted_reason: one row (an upsert always returns it).
std::optional<std::string> halted_reason_of(const pqxx::result& rows) {
  if (rows.empty()) return std::nullopt;
  return text_of(rows[0][0]);
}
}  // namespace

std::optional<std::string> account_admin::pause(pqxx::transaction_base& tx, const std::optional<std::string>& reason) {
  return halted_reason_of(exec(tx, sql::account_pause, reason));
}

std::optional<std::string> account_admin::resume(pqxx::transaction_base& tx) {
  return halted_reason_of(exec(tx, sql::account_resume));
}

std::optional<account_admin::LimitState> account_admin::limit_state(pqxx::transaction_base& tx) {
  auto rows = exec(tx, sql::limit_state_select);
  if (rows.empty()) return std::nullopt;
  const auto& r = rows[0];
  LimitState s;
  s.account = r[0].as<std::string>();
  s.limits_source = r[1].as<std::string>();
  s.rpm_limit = r[2].as<long long>();
  s.rpm_remaining = int_of(r[3]);
  s.rpm_reset_at = text_of(r[4]);
  s.rpm_paused_until = text_of(r[5]);
  s.day_limit = r[6].as<long long>();
  s.day_used = r[7].as<long long>();
  s.day_remaining = int_of(r[8]);
  s.day_reset_at = text_of(r[9]);
  s.day_paused_until = text_of(r[10]);
  s.parallel_limit = r[11].as<long long>();
  s.in_flight = r[12].as<long long>();
  s.parallel_paused_until = text_of(r[13]);
  s.balance = int_of(r[14]);
  s.balance_at = text_of(r[15]);
  s.halted_reason = text_of(r[16]);
  s.halted_at = text_of(r[17]);
  s.paused = r[18].as<bool>();
  s.paused_reason = text_of(r[19]);
  s.updated_at = r[20].as<std::string>();
  s.day_start_ms = int_of(r[21]);
  s.day_reset_reported = !r[22].is_null() && r[22].as<bool>();
  return s;
}

std::optional<account_admin::Balance> account_admin::balance(pqxx::transaction_base& tx) {
  auto rows = exec(tx, sql::account_get_balance);
  if (rows.empty()) return std::nullopt;
  return Balance{int_of(rows[0][0]), text_of(rows[0][1])};
}

}  // namespace klingq::db
