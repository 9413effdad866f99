// klingq.account: the one row every instance shares (learned limits, window counts,
// known balance, pause, 401 halt). Typed statements only: what the columns mean and what
// to do with them is decided in lib/dispatcher (ratelimit, credit, transition).
#pragma once

#include "db/prices.hpp"
#include "util/clock.hpp"

#include <pqxx/transaction_base>

#include <cstdint>
#include <optional>
#include <string>

namespace klingq::db::account {

// The limiter's columns, written back by save().
struct LimiterColumns {
  std::int64_t rpm_limit = 10;
  std::optional<std::int64_t> rpm_remaining;
  std::optional<TimePoint> rpm_reset_at;
  TimePoint rpm_next_at{};   // epoch: long ago
  TimePoint poll_next_at{};  // epoch: long ago
  std::optional<TimePoint> rpm_paused_until;
  std::int64_t day_limit = 100;
  std::int64_t day_used = 0;
  std::optional<TimePoint> day_reset_at;
  std::optional<TimePoint> day_paused_until;
  std::optional<std::int64_t> day_start_ms;  // the provider's day begins this long after 00:00 UTC
  bool day_reset_reported = false;           // day_reset_at came from a Reset-Day header
  std::optional<TimePoint> day_submitted_at;  // when submits were last taken
  std::optional<TimePoint> capacity_held_at;  // when a claim was last held by capacity
  std::int64_t parallel_limit = 1;
  std::optional<TimePoint> parallel_paused_until;
  std::string limits_source = "plan";
};

// The row as locked by lock().
struct Row {
  LimiterColumns limits;
  std::optional<std::int64_t> balance;  // NULL until the first balance query
  bool halted = false;                  // halted_reason is set (a 401)
  bool paused = false;                  // klingq pause
  TimePoint now;                        // the database's clock_timestamp()
  bool batch_budgets = false;           // some klingq.batches row has a budget
};

// Creates the row from the plan; while limits_source is still 'plan', applies it.
void ensure(pqxx::transaction_base& tx, const std::string& name, std::int64_t rpm,
            std::int64_t parallel, std::int64_t daily);
// SELECT ... FOR UPDATE. Throws std::runtime_error naming the row when it is missing.
Row lock(pqxx::transaction_base& tx, const std::string& name);
// Writes the limiter columns and takes `charge` from the known balance.
void save(pqxx::transaction_base& tx, const std::string& name, const LimiterColumns& limits,
          std::int64_t charge = 0);
// balance := the API's balance less the expected cost of every unanswered claim.
void set_balance(pqxx::transaction_base& tx, const std::string& name, std::int64_t balance,
                 const Prices& prices);
// Takes `amount` from the known balance (negative: gives it back).
void charge(pqxx::transaction_base& tx, const std::string& name, std::int64_t amount);
void halt(pqxx::transaction_base& tx, const std::string& name, const std::string& reason);
void clear_halt(pqxx::transaction_base& tx, const std::string& name);
// Clears a halt whose reason begins with `reason_prefix`; true when one was cleared.
bool clear_halt_matching(pqxx::transaction_base& tx, const std::string& name, const std::string& reason_prefix);

}  // namespace klingq::db::account
