// Applies the embedded migrations. One transaction for the whole run, so a failing
// migration leaves the schema exactly as it was; pg_advisory_xact_lock makes
// concurrent runners (two klingq migrate, or several hosts) wait for each other. The
// runner's own statements (lock, bookkeeping table, versions) are lib/db/sql/
// schema_migrations_*.sql and klingq_schema_create.sql; the migrations are schema/*.sql.
#include "db/migrations.hpp"

#include "db/sql_statements.hpp"
#include "db/statement.hpp"

#include <pqxx/pqxx>

#include <algorithm>

namespace klingq::db {
namespace {
using namespace detail;

// Any fixed 64-bit number unique to klingq's migration runner.
constexpr long long migration_lock_key = 0x6b6c696e67710001LL;

int max_version(pqxx::transaction_base& tx) { return exec1(tx, sql::schema_migrations_get_version)[0].as<int>(); }

}  // namespace

int required_schema_version() {
  const auto& all = embedded_migrations();
  return all.empty() ? 0 : all.back().version;
}

std::vector<int> migrate(pqxx::connection& connection) {
  pqxx::work tx(connection);
  exec(tx, sql::schema_migrations_lock, migration_lock_key);
  exec(tx, sql::klingq_schema_create);
  exec(tx, sql::schema_migrations_create);
  std::vector<int> applied_now;
  auto applied = exec(tx, sql::schema_migrations_list);
  std::vector<int> done;
  for (const auto& row : applied) done.push_back(row[0].as<int>());
  for (const auto& migration : embedded_migrations()) {
    if (std::find(done.begin(), done.end(), migration.version) != done.end()) continue;
    // A migration file holds many commands: sent as it is (simple query), not prepared.
    tx.exec(migration.sql);
    exec(tx, sql::schema_migrations_insert, migration.version, std::string(migration.name));
    applied_now.push_back(migration.version);
  }
  tx.commit();
  return applied_now;
}

int current_schema_version(pqxx::connection& connection) {
  pqxx::read_transaction tx(connection);
  auto exists = exec1(tx, sql::schema_migrations_exists);
  if (!exists[0].as<bool>()) return 0;
  return max_version(tx);
}

void require_current_schema(pqxx::connection& connection) {
  const int have = current_schema_version(connection);
  const int need = required_schema_version();
  if (have < need) {
    throw SchemaTooOld("database schema is at version " + std::to_string(have) +
                       " but this klingq needs version " + std::to_string(need) +
                       "; run `klingq migrate` first");
  }
}

}  // namespace klingq::db
