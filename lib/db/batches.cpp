// See batches.hpp.
#include "db/batches.hpp"

#include "db/sql_statements.hpp"
#include "db/statement.hpp"

#include <algorithm>
#include <cstdio>

namespace klingq::db::batches {
using namespace detail;

namespace {

// A text[] literal: every element double-quoted, with " and \ escaped, so that any
// label (commas, braces, quotes, the empty key) comes through as it is.
std::string text_array(const std::vector<std::string>& items) {
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

template <typename T, typename F>
std::string number_array(const std::vector<T>& items, F&& format) {
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += format(items[i]);
  }
  return out + "}";
}

std::string exact(double value) {
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%.17g", value);
  return buffer;
}

std::optional<long long> opt_ll(const std::optional<std::int64_t>& v) {
  if (!v) return std::nullopt;
  return static_cast<long long>(*v);
}

Settings settings_of(const pqxx::row& r) {
  Settings s;
  s.batch = text_of(r[0]);
  s.weight = r[1].as<int>();
  s.max_parallel = int_of(r[2]);
  s.daily_cap = int_of(r[3]);
  s.budget = int_of(r[4]);
  s.paused = r[5].as<bool>();
  return s;
}

}  // namespace

Settings set(pqxx::transaction_base& tx, const std::optional<std::string>& batch, std::optional<int> weight,
             const Change<std::int64_t>& max_parallel, const Change<std::int64_t>& daily_cap,
             const Change<std::int64_t>& budget) {
  auto value = [](const Change<std::int64_t>& c) { return c ? opt_ll(*c) : std::nullopt; };
  return settings_of(exec1(tx, sql::batches_set, batch, weight, max_parallel.has_value(), value(max_parallel),
                           daily_cap.has_value(), value(daily_cap), budget.has_value(), value(budget)));
}

void set_paused(pqxx::transaction_base& tx, const std::optional<std::string>& batch, bool paused,
                const std::optional<std::string>& reason) {
  exec(tx, sql::batches_set_paused, batch, paused, reason);
}

std::vector<Listed> list(pqxx::transaction_base& tx, const std::optional<std::string>& batch) {
  std::vector<Listed> out;
  for (const auto& r : exec(tx, sql::batches_list, batch)) {
    Listed l;
    l.settings = settings_of(r);
    l.paused_reason = text_of(r[6]);
    l.queued = r[7].as<long long>();
    l.in_flight = r[8].as<long long>();
    l.submits_last_hour = r[9].as<long long>();
    if (!r[10].is_null()) l.share_last_hour = r[10].as<double>();
    l.created_at = r[11].as<std::string>();
    l.updated_at = r[12].as<std::string>();
    out.push_back(std::move(l));
  }
  return out;
}

std::optional<int> top_priority(pqxx::transaction_base& tx, std::optional<int> below) {
  auto rows = exec(tx, sql::jobs_get_top_priority, below);
  if (rows.empty()) return std::nullopt;
  return rows[0][0].as<int>();
}

double share_clock(pqxx::transaction_base& tx) {
  auto rows = exec(tx, sql::batch_share_clock_get);
  return rows.empty() ? 0.0 : rows[0][0].as<double>();
}

std::vector<Candidate> window(pqxx::transaction_base& tx, std::int64_t window, std::int64_t offset) {
  std::vector<Candidate> out;
  for (const auto& r :
       exec(tx, sql::batches_select_window, static_cast<long long>(window), static_cast<long long>(offset))) {
    Candidate c;
    c.key = r[0].as<std::string>();
    c.unlabelled = r[1].as<bool>();
    c.weight = r[2].as<int>();
    c.max_parallel = int_of(r[3]);
    c.daily_cap = int_of(r[4]);
    c.budget = int_of(r[5]);
    c.pass = r[6].as<double>();
    c.day_count = r[7].as<long long>();
    c.day_key = int_of(r[8]);
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<Runnable> runnable(pqxx::transaction_base& tx, const std::vector<std::string>& keys, int priority,
                               std::int64_t limit, std::int64_t count_to) {
  std::vector<Runnable> out;
  if (keys.empty() || limit <= 0) return out;
  for (const auto& r : exec(tx, sql::batches_select_runnable, text_array(keys), priority, static_cast<long long>(limit),
                            static_cast<long long>(std::max<std::int64_t>(1, count_to)))) {
    out.push_back({r[0].as<std::string>(), r[1].as<long long>()});
  }
  return out;
}

std::vector<std::pair<std::string, std::int64_t>> in_flight(pqxx::transaction_base& tx,
                                                            const std::vector<std::string>& keys) {
  std::vector<std::pair<std::string, std::int64_t>> out;
  if (keys.empty()) return out;
  for (const auto& r : exec(tx, sql::jobs_count_in_flight_by_batch, text_array(keys))) {
    out.emplace_back(r[0].as<std::string>(), r[1].as<long long>());
  }
  return out;
}

std::vector<Head> heads(pqxx::transaction_base& tx, const std::vector<std::string>& keys,
                        const std::vector<std::int64_t>& counts, int priority, const Prices& p) {
  std::vector<Head> out;
  if (keys.empty()) return out;
  const auto counts_text = number_array(counts, [](std::int64_t n) { return std::to_string(n); });
  for (const auto& r : exec(tx, sql::jobs_select_batch_heads, text_array(keys), counts_text, priority,
                            static_cast<long long>(p.standard_5), static_cast<long long>(p.standard_10),
                            static_cast<long long>(p.professional_5), static_cast<long long>(p.professional_10))) {
    Head h;
    h.key = r[0].as<std::string>();
    h.id = r[1].as<long long>();
    h.expected_cost = r[2].as<long long>();
    h.run_after = from_epoch_ms(r[3].as<long long>());
    h.batch = text_of(r[4]);
    h.day_counted = r[5].as<bool>();
    out.push_back(std::move(h));
  }
  return out;
}

void save_shares(pqxx::transaction_base& tx, const std::vector<Saved>& batches, double vtime) {
  std::vector<std::string> keys;
  std::vector<double> passes;
  std::vector<std::int64_t> counts;
  std::vector<std::optional<std::int64_t>> day_keys;
  for (const auto& b : batches) {
    keys.push_back(b.key);
    passes.push_back(b.pass);
    counts.push_back(b.day_count);
    day_keys.push_back(b.day_key);
  }
  exec(tx, sql::batches_save_shares, text_array(keys), number_array(passes, exact),
       number_array(counts, [](std::int64_t n) { return std::to_string(n); }),
       number_array(day_keys, [](const std::optional<std::int64_t>& n) {
         return n ? std::to_string(*n) : std::string("NULL");
       }),
       vtime);
}

std::vector<std::string> lock(pqxx::transaction_base& tx, const std::vector<std::string>& keys) {
  std::vector<std::string> out;
  if (keys.empty()) return out;
  for (const auto& r : exec(tx, sql::batches_lock, text_array(keys))) out.push_back(r[0].as<std::string>());
  return out;
}

std::vector<std::string> lock_lowest_active(pqxx::transaction_base& tx, std::int64_t limit) {
  std::vector<std::string> out;
  for (const auto& r : exec(tx, sql::batches_lock_lowest_active, static_cast<long long>(limit))) {
    out.push_back(r[0].as<std::string>());
  }
  return out;
}

std::vector<std::string> deactivate_idle(pqxx::transaction_base& tx, const std::vector<std::string>& keys) {
  std::vector<std::string> out;
  if (keys.empty()) return out;
  for (const auto& r : exec(tx, sql::batches_deactivate_idle, text_array(keys))) out.push_back(r[0].as<std::string>());
  return out;
}

void vacuum(pqxx::transaction_base& tx) {
  tx.exec(sql::batches_vacuum);  // a utility command: sent as it is, it cannot be prepared
}

}  // namespace klingq::db::batches
