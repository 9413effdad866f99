// The generation-time statements: lib/db/sql/generation_times_*.sql.
#include "db/generation.hpp"

#include "db/sql_statements.hpp"
#include "db/statement.hpp"

#include <pqxx/pqxx>

namespace klingq::db::generation {
using namespace detail;

void refresh(pqxx::transaction_base& tx, double window_seconds, std::int64_t per_kind) {
  exec(tx, sql::generation_times_refresh, window_seconds, static_cast<long long>(per_kind));
}

std::vector<Row> select(pqxx::transaction_base& tx) {
  std::vector<Row> rows;
  for (const auto& r : exec(tx, sql::generation_times_select)) {
    rows.push_back({r[0].as<std::string>(), r[1].as<int>(), r[2].as<std::string>(), r[3].as<long long>(),
                    r[4].as<long long>(), r[5].as<long long>(), r[6].as<long long>(), r[7].as<long long>(),
                    r[8].as<long long>(), r[9].as<long long>()});
  }
  return rows;
}

}  // namespace klingq::db::generation
