// Applies the embedded migrations. One transaction for the whole run, so a failing
// migration leaves the schema exactly as it was; pg_advisory_xact_lock makes
// concurrent runners (two klingq migrate, or several hosts) wait for each other.
#include "db/migrations.hpp"

#include <pqxx/pqxx>

#include <algorithm>

namespace klingq::db {
namespace {

// Any fixed 64-bit number unique to klingq's migration runner.
constexpr long long migration_lock_key = 0x6b6c696e67710001LL;

constexpr const char* create_bookkeeping = R"sql(
CREATE SCHEMA IF NOT EXISTS klingq;
CREATE TABLE IF NOT EXISTS klingq.schema_migrations (
  version    int PRIMARY KEY,
  name       text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);
)sql";

int max_version(pqxx::transaction_base& tx) {
  auto row = tx.exec1("SELECT coalesce(max(version), 0) FROM klingq.schema_migrations");
  return row[0].as<int>();
}

}  // namespace

int required_schema_version() {
  const auto& all = embedded_migrations();
  return all.empty() ? 0 : all.back().version;
}

std::vector<int> migrate(pqxx::connection& connection) {
  pqxx::work tx(connection);
  tx.exec_params("SELECT pg_advisory_xact_lock($1)", migration_lock_key);
  tx.exec(create_bookkeeping);
  std::vector<int> applied_now;
  auto applied = tx.exec("SELECT version FROM klingq.schema_migrations");
  std::vector<int> done;
  for (const auto& row : applied) done.push_back(row[0].as<int>());
  for (const auto& migration : embedded_migrations()) {
    if (std::find(done.begin(), done.end(), migration.version) != done.end()) continue;
    tx.exec(migration.sql);
    tx.exec_params("INSERT INTO klingq.schema_migrations (version, name) VALUES ($1, $2)",
                   migration.version, std::string(migration.name));
    applied_now.push_back(migration.version);
  }
  tx.commit();
  return applied_now;
}

int current_schema_version(pqxx::connection& connection) {
  pqxx::read_transaction tx(connection);
  auto exists = tx.exec1("SELECT to_regclass('klingq.schema_migrations') IS NOT NULL");
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
