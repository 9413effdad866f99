// How lib/db runs a statement: prepared, by name, with parameters. Every statement text
// is a constant of db/sql_statements.hpp (generated from lib/db/sql/*.sql); libpqxx
// registers it once per connection (PREPAREd on first use, again after a reconnect), so
// the hot claim and record statements are parsed and planned once instead of on every
// call. The prepared name is the text's hash. Only lib/db's sources include this.
#pragma once

#include "util/clock.hpp"

#include <pqxx/pqxx>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace klingq::db::detail {

inline const std::string& statement_name(const char* text) {
  thread_local std::unordered_map<const char*, std::string> names;
  auto [it, fresh] = names.try_emplace(text);
  if (fresh) it->second = "klingq_" + std::to_string(std::hash<std::string_view>{}(text));
  return it->second;
}

template <typename... Args>
pqxx::result exec(pqxx::transaction_base& tx, const char* text, Args&&... args) {
  const auto& name = statement_name(text);
  tx.conn().prepare(name, text);
  return tx.exec_prepared(name, std::forward<Args>(args)...);
}

template <typename... Args>
pqxx::row exec1(pqxx::transaction_base& tx, const char* text, Args&&... args) {
  auto rows = exec(tx, text, std::forward<Args>(args)...);
  if (rows.size() != 1) throw pqxx::unexpected_rows("expected 1 row, got " + std::to_string(rows.size()));
  return rows[0];
}

// Time travels as epoch milliseconds (klingq.epoch_ms / klingq.from_epoch_ms).
inline std::optional<long long> opt_ms(const std::optional<TimePoint>& t) {
  if (!t) return std::nullopt;
  return to_epoch_ms(*t);
}
inline std::optional<TimePoint> time_of(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return from_epoch_ms(f.as<long long>());
}
inline std::optional<long long> int_of(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<long long>();
}
inline std::optional<std::string> text_of(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<std::string>();
}

// A bigint[] literal for `= ANY($n::bigint[])`.
inline std::string ids_array(const std::vector<std::int64_t>& ids) {
  std::string text = "{";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) text += ',';
    text += std::to_string(ids[i]);
  }
  return text + "}";
}

}  // namespace klingq::db::detail
