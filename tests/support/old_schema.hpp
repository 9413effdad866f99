// A database at an older schema version: the migrations before `version` applied and
// recorded as klingq migrate would, so that a test can fill it and then see what the
// migration `version` does with rows from before it.
#pragma once

#include "db/migrations.hpp"

#include <pqxx/pqxx>

#include <string>

namespace klingq::testing {

inline void migrate_before(pqxx::connection& connection, int version) {
  pqxx::work tx(connection);
  tx.exec("CREATE SCHEMA klingq");
  tx.exec("CREATE TABLE klingq.schema_migrations (version int PRIMARY KEY, name text NOT NULL, "
          "applied_at timestamptz NOT NULL DEFAULT now())");
  for (const auto& m : klingq::db::embedded_migrations()) {
    if (m.version >= version) break;
    tx.exec(m.sql);
    tx.exec_params("INSERT INTO klingq.schema_migrations (version, name) VALUES ($1, $2)", m.version,
                   std::string(m.name));
  }
  tx.commit();
}

}  // namespace klingq::testing
