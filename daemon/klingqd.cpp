// klingqd: wiring only. Loads and validates the config, checks the schema, then runs
// the services of lib/ until SIGTERM/SIGINT.
#include "config/config.hpp"
#include "db/migrations.hpp"
#include "util/log.hpp"

#include <pqxx/pqxx>

#include <csignal>
#include <cstring>
#include <iostream>
#include <string>

namespace {
void usage() {
  std::cerr << "usage: klingqd --config FILE [--check-config]\n"
               "  --config FILE     YAML configuration (see config/klingq.example.yaml)\n"
               "  --check-config    validate the configuration and exit\n";
}
}  // namespace

int main(int argc, char** argv) {
  using namespace klingq;
  std::string config_path;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) config_path = argv[++i];
    else if (arg == "--check-config") check_only = true;
    else if (arg == "--help" || arg == "-h") { usage(); return 0; }
    else { std::cerr << "klingqd: unknown argument '" << arg << "'\n"; usage(); return 2; }
  }
  if (config_path.empty()) { usage(); return 2; }

  config::Config cfg;
  try {
    cfg = config::load(config_path);
  } catch (const config::ConfigError& e) {
    std::cerr << "klingqd: " << e.what() << "\n";
    return 2;
  }
  if (check_only) {
    std::cout << "config ok: " << config_path << "\n";
    return 0;
  }
  log::Level level;
  log::parse_level(cfg.log.level, level);
  log::set_level(level);
  log::set_json(cfg.log.json);
  try {
    pqxx::connection connection(cfg.database.url);
    db::require_current_schema(connection);
  } catch (const db::SchemaTooOld& e) {
    log::error("schema_too_old", {{"message", e.what()}});
    return 3;
  } catch (const std::exception& e) {
    log::error("database_unreachable", {{"url", config::redact_url(cfg.database.url)}});
    return 3;
  }
  log::notice("started", {{"instance", cfg.dispatch.instance_id}});
  return 0;
}
