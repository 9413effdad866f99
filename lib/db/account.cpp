// klingq.account statements; see account.hpp.
#include "db/account.hpp"

#include "db/sql_statements.hpp"
#include "db/statement.hpp"

#include <stdexcept>

namespace klingq::db::account {
using namespace detail;

namespace {
// rpm_next_at and poll_next_at use the epoch for "long ago"; the column stores -infinity.
std::optional<long long> ms_or_null(TimePoint t) {
  if (t == TimePoint{}) return std::nullopt;
  return to_epoch_ms(t);
}
}  // namespace

void ensure(pqxx::transaction_base& tx, const std::string& name, std::int64_t rpm, std::int64_t parallel,
            std::int64_t daily) {
  exec(tx, sql::account_ensure, name, static_cast<long long>(rpm), static_cast<long long>(parallel),
       static_cast<long long>(daily));
}

Row lock(pqxx::transaction_base& tx, const std::string& name) {
  auto rows = exec(tx, sql::account_lock, name);
  if (rows.empty()) throw std::runtime_error("klingq.account row '" + name + "' is missing");
  const auto& r = rows[0];
  Row row;
  auto& s = row.limits;
  s.rpm_limit = r[0].as<long long>();
  s.rpm_remaining = int_of(r[1]);
  s.rpm_reset_at = time_of(r[2]);
  s.rpm_next_at = time_of(r[3]).value_or(TimePoint{});
  s.poll_next_at = time_of(r[4]).value_or(TimePoint{});
  s.rpm_paused_until = time_of(r[5]);
  s.day_limit = r[6].as<long long>();
  s.day_used = r[7].as<long long>();
  s.day_reset_at = time_of(r[8]);
  s.day_paused_until = time_of(r[9]);
  s.parallel_limit = r[10].as<long long>();
  s.parallel_paused_until = time_of(r[11]);
  s.limits_source = r[12].as<std::string>();
  row.balance = int_of(r[13]);
  row.halted = !r[14].is_null();
  row.paused = r[15].as<bool>();
  row.now = from_epoch_ms(r[16].as<long long>());
  row.batch_budgets = r[17].as<bool>();
  s.day_start_ms = int_of(r[18]);
  s.day_reset_reported = r[19].as<bool>();
  s.day_submitted_at = time_of(r[20]);
  s.capacity_held_at = time_of(r[21]);
  return row;
}

void save(pqxx::transaction_base& tx, const std::string& name, const LimiterColumns& s, std::int64_t charge) {
  exec(tx, sql::account_save, name, static_cast<long long>(s.rpm_limit),
       s.rpm_remaining ? std::optional<long long>(*s.rpm_remaining) : std::nullopt, opt_ms(s.rpm_reset_at),
       ms_or_null(s.rpm_next_at), ms_or_null(s.poll_next_at), opt_ms(s.rpm_paused_until),
       static_cast<long long>(s.day_limit), static_cast<long long>(s.day_used), opt_ms(s.day_reset_at),
       opt_ms(s.day_paused_until), static_cast<long long>(s.parallel_limit), opt_ms(s.parallel_paused_until),
       s.limits_source, static_cast<long long>(charge),
       s.day_start_ms ? std::optional<long long>(*s.day_start_ms) : std::nullopt, s.day_reset_reported,
       opt_ms(s.day_submitted_at), opt_ms(s.capacity_held_at));
}

void set_balance(pqxx::transaction_base& tx, const std::string& name, std::int64_t balance, const Prices& p) {
  exec(tx, sql::account_set_balance, name, static_cast<long long>(balance),
       static_cast<long long>(p.standard_5), static_cast<long long>(p.standard_10),
       static_cast<long long>(p.professional_5), static_cast<long long>(p.professional_10));
}

void charge(pqxx::transaction_base& tx, const std::string& name, std::int64_t amount) {
  exec(tx, sql::account_charge, name, static_cast<long long>(amount));
}

void halt(pqxx::transaction_base& tx, const std::string& name, const std::string& reason) {
  exec(tx, sql::account_halt, name, reason);
}

void clear_halt(pqxx::transaction_base& tx, const std::string& name) {
  exec(tx, sql::account_clear_halt, name);
}

bool clear_halt_matching(pqxx::transaction_base& tx, const std::string& name, const std::string& reason_prefix) {
  return !exec(tx, sql::account_clear_halt_matching, name, reason_prefix).empty();
}

}  // namespace klingq::db::account
