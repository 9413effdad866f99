// klingqd: wiring only. Parses the arguments, loads and validates the config, checks
// the database, builds the engine (lib/dispatcher) and runs it through
// dispatcher::Daemon, which binds the listeners and handles the signals. Exit codes:
// 0 clean stop, 2 bad config or usage, 3 database or schema problem, 4 a listener
// could not bind.
#include "config/config.hpp"
#include "db/pool.hpp"
#include "dispatcher/connect_options.hpp"
#include "dispatcher/daemon.hpp"
#include "dispatcher/engine.hpp"
#include "dispatcher/options.hpp"
#include "http/client.hpp"
#include "ops/metrics.hpp"
#include "util/log.hpp"
#include "util/version.hpp"

#include <boost/asio/io_context.hpp>

#include <iostream>
#include <string>

namespace {

constexpr int exit_clean = 0;
constexpr int exit_usage = 2;  // also a config the validator refuses
constexpr int exit_database = 3;
constexpr int exit_bind = 4;

void usage() {
  std::cerr << "usage: klingqd --config FILE [--check-config]\n"
               "  --config FILE     YAML configuration (see config/klingq.example.yaml)\n"
               "  --check-config    validate the configuration and exit\n"
               "  --version         print the version and exit\n"
               "Signals: SIGTERM/SIGINT stop gracefully (a second one exits at once),\n"
               "SIGHUP reloads the configuration.\n";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace klingq;
  std::string config_path;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--config") {
      if (i + 1 >= argc) { std::cerr << "klingqd: --config needs a FILE\n"; usage(); return exit_usage; }
      config_path = argv[++i];
    }
    else if (arg == "--check-config") check_only = true;
    else if (arg == "--version") { std::cout << "klingqd " << version() << "\n"; return exit_clean; }
    else if (arg == "--help" || arg == "-h") { usage(); return exit_clean; }
    else { std::cerr << "klingqd: unknown argument '" << arg << "'\n"; usage(); return exit_usage; }
  }
  if (config_path.empty()) { usage(); return exit_usage; }

  dispatcher::LoadedConfig loaded;
  http::ConnectOptions connect;  // the proxy and trust store, for the API and downloads
  try {
    loaded = dispatcher::load_config(config_path);
    connect = dispatcher::connect_options_from(loaded.config);
  } catch (const config::ConfigError& e) {
    std::cerr << "klingqd: " << e.what() << "\n";
    return exit_usage;
  }
  if (check_only) {
    std::cout << "config ok: " << config_path << "\n";
    return exit_clean;
  }
  const auto& cfg = loaded.config;
  dispatcher::apply_logging(cfg);
  if (connect.https_proxy || connect.http_proxy || !connect.ca_file.empty() || !connect.ca_dir.empty()) {
    log::notice("api_route", {{"route", dispatcher::describe_route(cfg, connect)}});
  }
  if (!dispatcher::database_ready(cfg)) return exit_database;

  boost::asio::io_context io(1);
  db::Pool pool(cfg.database.url, cfg.database.pool_size);
  ops::Metrics metrics;
  http::ClientOptions client_options;
  client_options.max_connections = static_cast<std::size_t>(cfg.api.max_connections);
  client_options.timeout = std::chrono::milliseconds(cfg.api.request_timeout_ms);
  client_options.connect = connect;
  http::Client api(io.get_executor(), cfg.api.base_url, client_options);
  dispatcher::Engine engine(io.get_executor(), pool, api, metrics, dispatcher::options_from(cfg, loaded.api_key));

  dispatcher::Daemon daemon(io, engine, api, metrics, config_path, loaded);
  if (!daemon.listen()) return exit_bind;
  const bool clean = daemon.run();
  pool.stop();
  return clean ? exit_clean : exit_database;
}
