// klingq.jobs statements; see jobs.hpp. The hot statements set updated_at themselves,
// so the per-row trigger jobs_touch, which fires only when an UPDATE leaves it alone,
// costs them nothing (schema/009_lighter_updates.sql).
#include "db/jobs.hpp"

#include "db/sql_statements.hpp"
#include "db/statement.hpp"

#include <boost/json.hpp>

namespace klingq::db::jobs {
using namespace detail;

namespace {
long long ll(std::int64_t v) { return static_cast<long long>(v); }
}  // namespace

std::int64_t reap_expired(pqxx::transaction_base& tx, const Prices& p) {
  return exec1(tx, sql::jobs_reap_expired, ll(p.standard_5), ll(p.standard_10), ll(p.professional_5),
               ll(p.professional_10))[0]
      .as<long long>();
}

std::int64_t count_in_flight(pqxx::transaction_base& tx, std::int64_t submitted_cap) {
  return exec1(tx, sql::jobs_count_in_flight, ll(submitted_cap))[0].as<long long>();
}

std::int64_t count_dispatching(pqxx::transaction_base& tx) {
  return exec1(tx, sql::jobs_count_dispatching)[0].as<long long>();
}

std::vector<Claimable> select_claimable(pqxx::transaction_base& tx, std::int64_t limit, const Prices& p) {
  std::vector<Claimable> out;
  for (const auto& row : exec(tx, sql::jobs_select_claimable, ll(limit), ll(p.standard_5), ll(p.standard_10),
                              ll(p.professional_5), ll(p.professional_10))) {
    Claimable c;
    c.id = row[0].as<long long>();
    c.expected_cost = row[1].as<long long>();
    c.run_after = from_epoch_ms(row[2].as<long long>());
    if (!row[3].is_null()) c.batch = row[3].as<std::string>();
    c.day_counted = row[4].as<bool>();
    out.push_back(std::move(c));
  }
  return out;
}

void mark_batch_waiting(pqxx::transaction_base& tx, const std::string& batch) {
  exec(tx, sql::jobs_mark_batch_waiting, batch);
}

std::vector<Claimed> claim(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids,
                           const std::string& instance, double lease_seconds, const std::string& webhook_url) {
  std::vector<Claimed> out;
  for (const auto& row : exec(tx, sql::jobs_claim, ids_array(ids), instance, lease_seconds, webhook_url)) {
    Claimed job;
    job.id = row[0].as<long long>();
    job.prompt = row[1].as<std::string>();
    job.duration = row[2].as<int>();
    job.aspect_ratio = row[3].as<std::string>();
    if (!row[4].is_null()) job.version = row[4].as<std::string>();
    job.mode = row[5].as<std::string>();
    job.options_json = row[6].as<std::string>();
    job.idempotency_key = row[7].as<std::string>();
    job.attempts = row[8].as<int>();
    job.max_attempts = row[9].as<int>();
    job.created_at = from_epoch_ms(row[10].as<long long>());
    job.webhook_url = row[11].as<std::string>();
    out.push_back(std::move(job));
  }
  return out;
}

std::vector<std::int64_t> mark_submitted(pqxx::transaction_base& tx, const std::vector<Accepted>& accepted,
                                         const std::string& instance) {
  boost::json::array group;
  std::vector<std::int64_t> ids;
  for (const auto& a : accepted) {
    group.push_back(boost::json::object{
        {"id", a.id}, {"remote_id", a.remote_id}, {"cost", a.cost}, {"first_poll", a.first_poll_seconds}});
    ids.push_back(a.id);
  }
  std::vector<std::int64_t> out;
  for (const auto& row : exec(tx, sql::jobs_mark_submitted, boost::json::serialize(group), instance, ids_array(ids))) {
    out.push_back(row[0].as<long long>());
  }
  return out;
}

bool mark_failed(pqxx::transaction_base& tx, std::int64_t id, const std::string& instance,
                 const std::string& error_json, int attempts_spent) {
  return exec(tx, sql::jobs_mark_failed, ll(id), instance, error_json, attempts_spent).affected_rows() > 0;
}

bool requeue(pqxx::transaction_base& tx, std::int64_t id, const std::string& instance,
             const std::optional<std::string>& error_json, int attempts_spent, TimePoint run_after,
             const std::string& wait_reason, bool day_counted) {
  return exec(tx, sql::jobs_requeue, ll(id), instance, error_json, attempts_spent,
              static_cast<long long>(to_epoch_ms(run_after)), wait_reason, day_counted)
             .affected_rows() > 0;
}

std::optional<Completed> complete(pqxx::transaction_base& tx, const std::string& remote_id, const char* state,
                                  const std::string& url, const std::string& metadata_json,
                                  const std::optional<std::string>& error_json, bool download_due,
                                  bool by_poll) {
  auto rows = exec(tx, sql::jobs_complete, remote_id, std::string(state), url, metadata_json, error_json,
                   download_due, by_poll);
  if (rows.empty()) return std::nullopt;
  Completed c;
  c.id = rows[0][0].as<long long>();
  c.credit_cost = int_of(rows[0][1]);
  if (!rows[0][2].is_null()) c.submit_to_complete_seconds = rows[0][2].as<double>();
  return c;
}

std::optional<std::string> state_by_remote_id(pqxx::transaction_base& tx, const std::string& remote_id) {
  auto rows = exec(tx, sql::jobs_get_state_by_remote_id, remote_id);
  if (rows.empty()) return std::nullopt;
  return rows[0][0].as<std::string>();
}

std::vector<DuePoll> select_due_polls(pqxx::transaction_base& tx, std::int64_t limit) {
  std::vector<DuePoll> out;
  for (const auto& row : exec(tx, sql::jobs_select_due_polls, ll(limit))) {
    out.push_back({row[0].as<long long>(), row[1].as<std::string>(), row[2].as<int>(), row[3].as<std::string>(),
                   row[4].as<int>(), row[5].as<std::string>(), from_epoch_ms(row[6].as<long long>()),
                   row[7].as<bool>()});
  }
  return out;
}

std::optional<TimePoint> next_poll_at(pqxx::transaction_base& tx) {
  return time_of(exec1(tx, sql::jobs_get_next_poll_at)[0]);
}

void schedule_poll(pqxx::transaction_base& tx, std::int64_t id, double seconds_until_next) {
  exec(tx, sql::jobs_schedule_poll, ll(id), seconds_until_next);
}

std::int64_t flag_stuck(pqxx::transaction_base& tx, double horizon_seconds) {
  return static_cast<std::int64_t>(exec(tx, sql::jobs_flag_stuck, horizon_seconds).affected_rows());
}

std::int64_t count_stuck(pqxx::transaction_base& tx) {
  return exec1(tx, sql::jobs_count_stuck)[0].as<long long>();
}

Released release_leases(pqxx::transaction_base& tx, const std::string& instance, const Prices& p) {
  auto row = exec1(tx, sql::jobs_release_leases, instance, ll(p.standard_5), ll(p.standard_10),
                   ll(p.professional_5), ll(p.professional_10));
  return {row[0].as<long long>(), row[1].as<long long>()};
}

void notify(pqxx::transaction_base& tx, const std::string& payload) { exec(tx, sql::jobs_notify, payload); }

}  // namespace klingq::db::jobs
