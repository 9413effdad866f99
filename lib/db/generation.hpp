// klingq.generation_times (schema/013_generation_times.sql): the quantiles of generation
// time per kind of job, recomputed from recent completions. Typed statements only; what
// the figures mean for polls is decided in lib/dispatcher/poll_schedule.
#pragma once

#include <pqxx/transaction_base>

#include <cstdint>
#include <string>
#include <vector>

namespace klingq::db::generation {

struct Row {
  std::string mode;
  int duration = 5;
  std::string version;  // "" = the API's default
  std::int64_t samples = 0;
  std::int64_t p10_ms = 0, p25_ms = 0, p50_ms = 0, p75_ms = 0, p90_ms = 0, p99_ms = 0;
};

// Recomputes every kind completed within window_seconds, from its last `per_kind`.
void refresh(pqxx::transaction_base& tx, double window_seconds, std::int64_t per_kind);
std::vector<Row> select(pqxx::transaction_base& tx);

}  // namespace klingq::db::generation
