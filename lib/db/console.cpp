// The console's and the operator actions' statements; see console.hpp.
#include "db/console.hpp"

#include "db/sql_statements.hpp"
#include "db/statement.hpp"

namespace klingq::db::console {
using namespace detail;

namespace {
std::int64_t ms_or_zero(const pqxx::field& f) { return f.is_null() ? 0 : f.as<long long>(); }
}  // namespace

std::optional<Account> account(pqxx::transaction_base& tx) {
  auto rows = exec(tx, sql::account_overview);
  if (rows.empty()) return std::nullopt;
  const auto& r = rows[0];
  Account a;
  a.limits_source = r[0].as<std::string>();
  a.rpm_limit = r[1].as<long long>();
  a.rpm_remaining = int_of(r[2]);
  a.rpm_reset_at = int_of(r[3]);
  a.rpm_paused_until = int_of(r[4]);
  a.day_limit = r[5].as<long long>();
  a.day_used = r[6].as<long long>();
  a.day_remaining = int_of(r[7]);
  a.day_reset_at = int_of(r[8]);
  a.day_paused_until = int_of(r[9]);
  a.parallel_limit = r[10].as<long long>();
  a.parallel_paused_until = int_of(r[11]);
  a.balance = int_of(r[12]);
  a.balance_at = int_of(r[13]);
  a.halted_reason = text_of(r[14]);
  a.halted_at = int_of(r[15]);
  a.paused = r[16].as<bool>();
  a.paused_reason = text_of(r[17]);
  a.updated_at = ms_or_zero(r[18]);
  a.day_start_ms = int_of(r[19]);
  a.now = r[20].as<long long>();
  return a;
}

std::vector<BatchStateCount> batch_counts(pqxx::transaction_base& tx, const Prices& p) {
  std::vector<BatchStateCount> out;
  for (const auto& r : exec(tx, sql::batches_count_by_state, static_cast<long long>(p.standard_5),
                            static_cast<long long>(p.standard_10), static_cast<long long>(p.professional_5),
                            static_cast<long long>(p.professional_10))) {
    BatchStateCount c;
    c.batch = text_of(r[0]);
    c.state = r[1].as<std::string>();
    c.jobs = r[2].as<long long>();
    c.credits = r[3].as<long long>();
    c.queued_priority = int_of(r[4]);
    c.last_change = int_of(r[5]);
    c.queued_cost = r[6].as<long long>();
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<std::pair<std::optional<std::string>, std::optional<std::string>>> paused_batches(pqxx::transaction_base& tx) {
  std::vector<std::pair<std::optional<std::string>, std::optional<std::string>>> out;
  for (const auto& r : exec(tx, sql::batches_list_paused)) out.emplace_back(text_of(r[0]), text_of(r[1]));
  return out;
}

std::vector<EventBucket> events_last_hour(pqxx::transaction_base& tx) {
  std::vector<EventBucket> out;
  for (const auto& r : exec(tx, sql::job_events_last_hour)) {
    out.push_back({r[0].as<long long>(), r[1].as<std::string>(), text_of(r[2]), r[3].as<long long>()});
  }
  return out;
}

std::int64_t credits_spent_last_hour(pqxx::transaction_base& tx) {
  return exec1(tx, sql::credits_spent_last_hour)[0].as<long long>();
}

std::vector<Instance> live_instances(pqxx::transaction_base& tx) {
  std::vector<Instance> out;
  for (const auto& r : exec(tx, sql::instances_list_live)) {
    out.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<int>(), r[3].as<std::string>(),
                   ms_or_zero(r[4]), ms_or_zero(r[5]), r[6].as<std::string>()});
  }
  return out;
}

namespace {
// The columns jobs_page.sql and jobs_search.sql both return.
std::vector<JobRow> job_rows(const pqxx::result& rows) {
  std::vector<JobRow> out;
  for (const auto& r : rows) {
    JobRow j;
    j.id = r[0].as<long long>();
    j.state = r[1].as<std::string>();
    j.attempts = r[2].as<long long>();
    j.remote_id = text_of(r[3]);
    j.credit_cost = int_of(r[4]);
    j.prompt = r[5].as<std::string>();
    j.batch = text_of(r[6]);
    j.error_class = text_of(r[7]);
    j.error_message = text_of(r[8]);
    j.created_at = ms_or_zero(r[9]);
    j.updated_at = ms_or_zero(r[10]);
    j.priority = r[11].as<long long>();
    j.wait_reason = text_of(r[12]);
    out.push_back(std::move(j));
  }
  return out;
}
}  // namespace

std::vector<JobRow> jobs_page(pqxx::transaction_base& tx, const JobFilter& f) {
  exec(tx, sql::session_force_custom_plans);
  std::optional<long long> before;
  if (f.before_id) before = *f.before_id;
  return job_rows(exec(tx, sql::jobs_page, f.state, f.batch, f.text, before, static_cast<long long>(f.limit)));
}

std::vector<JobRow> jobs_search(pqxx::transaction_base& tx, const JobFilter& f, std::int64_t low_id,
                                std::int64_t high_id, bool remote_id_too) {
  exec(tx, sql::session_force_custom_plans);
  return job_rows(exec(tx, sql::jobs_search, f.state, f.batch, f.text.value_or(""), static_cast<long long>(high_id),
                       static_cast<long long>(f.limit), static_cast<long long>(low_id), remote_id_too));
}

std::optional<std::pair<std::int64_t, std::int64_t>> job_id_range(pqxx::transaction_base& tx) {
  auto r = exec1(tx, sql::jobs_get_id_range);
  if (r[0].is_null()) return std::nullopt;
  return std::pair<std::int64_t, std::int64_t>{r[0].as<long long>(), r[1].as<long long>()};
}

std::optional<Job> job(pqxx::transaction_base& tx, std::int64_t id) {
  auto rows = exec(tx, sql::jobs_get, static_cast<long long>(id));
  if (rows.empty()) return std::nullopt;
  const auto& r = rows[0];
  Job j;
  j.id = r[0].as<long long>();
  j.state = r[1].as<std::string>();
  j.prompt = r[2].as<std::string>();
  j.duration = r[3].as<int>();
  j.aspect_ratio = r[4].as<std::string>();
  j.version = text_of(r[5]);
  j.mode = r[6].as<std::string>();
  j.priority = r[7].as<long long>();
  j.batch = text_of(r[8]);
  j.attempts = r[9].as<long long>();
  j.max_attempts = r[10].as<long long>();
  j.wait_reason = text_of(r[11]);
  j.remote_id = text_of(r[12]);
  j.url = text_of(r[13]);
  j.credit_cost = int_of(r[14]);
  j.last_error_json = text_of(r[15]);
  j.output_path = text_of(r[16]);
  j.output_bytes = int_of(r[17]);
  j.output_error_json = text_of(r[18]);
  j.lease_owner = text_of(r[19]);
  j.lease_expires_at = int_of(r[20]);
  j.run_after = int_of(r[21]);
  j.created_at = ms_or_zero(r[22]);
  j.submitted_at = int_of(r[23]);
  j.completed_at = int_of(r[24]);
  j.updated_at = ms_or_zero(r[25]);
  return j;
}

std::vector<JobEvent> job_events(pqxx::transaction_base& tx, std::int64_t job_id) {
  std::vector<JobEvent> out;
  for (const auto& r : exec(tx, sql::job_events_list_by_job, static_cast<long long>(job_id))) {
    out.push_back({ms_or_zero(r[0]), text_of(r[1]), r[2].as<std::string>(), text_of(r[3]), text_of(r[4])});
  }
  return out;
}

std::vector<OperatorEvent> operator_events(pqxx::transaction_base& tx, std::int64_t job_id) {
  std::vector<OperatorEvent> out;
  for (const auto& r : exec(tx, sql::operator_events_list_by_job, static_cast<long long>(job_id))) {
    out.push_back({ms_or_zero(r[0]), r[1].as<std::string>(), r[2].as<std::string>(), text_of(r[3]),
                   r[4].as<std::string>()});
  }
  return out;
}

void record_operator_event(pqxx::transaction_base& tx, const std::string& actor, const std::string& action,
                           std::optional<std::int64_t> job_id, const std::optional<std::string>& batch,
                           const std::optional<std::string>& reason, const std::string& detail_json) {
  std::optional<long long> id;
  if (job_id) id = *job_id;
  exec(tx, sql::operator_events_insert, actor, action, id, batch, reason, detail_json);
}

}  // namespace klingq::db::console
