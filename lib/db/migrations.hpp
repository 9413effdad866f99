// Schema migrations: the numbered files of schema/, compiled in, and the runner that
// applies them in order, in one transaction, under an advisory lock.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

#include <pqxx/connection>

namespace klingq::db {

struct Migration {
  int version;       // the number the file name starts with
  const char* name;  // file name without .sql
  const char* sql;   // the whole file
};

// All migrations compiled into this binary, ordered by version.
const std::vector<Migration>& embedded_migrations();

// The schema version this build needs (the highest embedded migration).
int required_schema_version();

// Applies every migration not yet recorded in klingq.schema_migrations and returns the
// versions it applied (empty when the schema was current). Safe to run concurrently
// from several processes: the advisory lock serialises them.
std::vector<int> migrate(pqxx::connection& connection);

// The highest applied version, or 0 on a database klingq never touched.
int current_schema_version(pqxx::connection& connection);

// Throws SchemaTooOld with a message that says what to run when the database is
// behind this build.
struct SchemaTooOld : std::runtime_error {
  using std::runtime_error::runtime_error;
};
void require_current_schema(pqxx::connection& connection);

}  // namespace klingq::db
