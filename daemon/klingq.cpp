// klingq: the operator CLI. Subcommands talk to the database only.
#include "config/config.hpp"
#include "db/migrations.hpp"

#include <pqxx/pqxx>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

namespace {
void usage() {
  std::cerr << "usage: klingq [--database URL | --config FILE] COMMAND\n"
               "commands:\n"
               "  migrate   apply the schema migrations this build carries\n"
               "  status    jobs by state\n"
               "The database is --database, else $KLINGQ_DATABASE_URL, else the config's\n"
               "database.url.\n"
               "exit codes: 0 ok, 1 command failed, 2 usage error, 3 database error\n";
}
}  // namespace

int main(int argc, char** argv) {
  using namespace klingq;
  std::string database;
  std::string config_path;
  std::vector<std::string> rest;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--database" && i + 1 < argc) database = argv[++i];
    else if (arg == "--config" && i + 1 < argc) config_path = argv[++i];
    else if (arg == "--help" || arg == "-h") { usage(); return 0; }
    else rest.push_back(arg);
  }
  if (database.empty()) {
    if (const char* env = std::getenv("KLINGQ_DATABASE_URL"); env && *env) database = env;
  }
  if (database.empty() && !config_path.empty()) {
    try {
      database = config::load(config_path).database.url;
    } catch (const config::ConfigError& e) {
      std::cerr << "klingq: " << e.what() << "\n";
      return 2;
    }
  }
  if (rest.empty() || database.empty()) { usage(); return 2; }
  try {
    pqxx::connection connection(database);
    if (rest[0] == "migrate") {
      auto applied = db::migrate(connection);
      if (applied.empty()) std::cout << "schema is current (version " << db::required_schema_version() << ")\n";
      for (int v : applied) std::cout << "applied migration " << v << "\n";
      return 0;
    }
    if (rest[0] == "status") {
      pqxx::read_transaction tx(connection);
      auto rows = tx.exec("SELECT state::text, count(*) FROM klingq.jobs GROUP BY 1 ORDER BY 1");
      for (const auto& row : rows) std::cout << row[0].c_str() << "\t" << row[1].c_str() << "\n";
      return 0;
    }
    std::cerr << "klingq: unknown command '" << rest[0] << "'\n";
    usage();
    return 2;
  } catch (const pqxx::broken_connection&) {
    std::cerr << "klingq: cannot connect to " << config::redact_url(database) << "\n";
    return 3;
  } catch (const std::exception& e) {
    std::cerr << "klingq: " << e.what() << "\n";
    return 1;
  }
}
