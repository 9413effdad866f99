// One job of a bulk load, after validation: the columns of klingq.jobs an operator may
// set, with the table's defaults for what the input left out. The validator mirrors the
// table's CHECK constraints (schema/001_init.sql) so that bad lines are refused with a
// line number before they reach COPY, where one bad row would abort the whole load.
#pragma once

#include "config/config.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace klingq::loader {

// The settable columns, in the order COPY lists them.
enum class Column : std::size_t {
  prompt,
  duration,
  aspect_ratio,
  version,
  mode,
  options,
  priority,
  run_after,
  batch,
  max_attempts,
};
inline constexpr std::size_t column_count = 10;
inline constexpr std::array<std::string_view, column_count> column_names = {
    "prompt", "duration", "aspect_ratio", "version",  "mode",
    "options", "priority", "run_after",   "batch",    "max_attempts"};

// The column called name, or nullopt for a name klingq.jobs does not let loads set.
std::optional<Column> column_from_name(std::string_view name);
inline std::string_view name_of(Column column) {
  return column_names[static_cast<std::size_t>(column)];
}

// The column defaults of klingq.jobs (tests/integration/cli_test.cpp checks that the
// schema agrees). A load sends a default only when a row lacks a column that other rows
// of the same COPY carry; otherwise the column is left out and the table fills it in.
namespace defaults {
inline constexpr int duration = 5;
inline constexpr std::string_view aspect_ratio = "16:9";
inline constexpr std::string_view mode = "standard";
inline constexpr std::string_view options = "{}";
inline constexpr int priority = 0;
// timestamptz input 'now' is the transaction's start time: exactly what now() gives.
inline constexpr std::string_view run_after = "now";
inline constexpr int max_attempts = 8;
}  // namespace defaults

// A validated row. Which columns the input carried is kept so that a COPY can leave the
// others to the table's defaults.
struct Job {
  std::string prompt;                 // byte-exact, valid UTF-8, 1-2500 characters
  int duration = defaults::duration;  // 5 | 10
  std::string_view aspect_ratio = defaults::aspect_ratio;  // points at a static literal
  std::optional<std::string_view> version;                 // NULL: the API's default
  std::string_view mode = defaults::mode;                   // standard | professional
  std::string options{defaults::options};                   // JSON object text
  int priority = defaults::priority;
  std::string run_after{defaults::run_after};  // timestamptz input text
  std::optional<std::string> batch;            // 1-200 characters, or NULL
  int max_attempts = defaults::max_attempts;   // 1-100
  std::array<bool, column_count> present{};    // columns the input set

  bool has(Column column) const { return present[static_cast<std::size_t>(column)]; }
  void reset();  // back to the defaults, keeping string capacity
};

// Credits the job will cost by the configured table (the API's creditCost is the truth
// once it is accepted).
std::int64_t credit_cost(const config::CostTable& table, std::string_view mode, int duration);
inline std::int64_t credit_cost(const config::CostTable& table, const Job& job) {
  return credit_cost(table, job.mode, job.duration);
}

}  // namespace klingq::loader
