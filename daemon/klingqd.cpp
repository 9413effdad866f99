// klingqd: wiring only. Loads and validates the config, checks the schema, binds the
// webhook and ops listeners, runs the engine (lib/dispatcher) until SIGTERM/SIGINT,
// reloads on SIGHUP. Exit codes: 0 clean stop, 2 bad config or usage, 3 database or
// schema problem, 4 a listener could not bind.
#include "config/config.hpp"
#include "db/migrations.hpp"
#include "db/pool.hpp"
#include "dispatcher/engine.hpp"
#include "http/client.hpp"
#include "http/server.hpp"
#include "ops/metrics.hpp"
#include "ops/ops_http.hpp"
#include "ops/sd_notify.hpp"
#include "util/log.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <pqxx/pqxx>

#include <csignal>
#include <iostream>
#include <optional>
#include <string>

namespace {
namespace asio = boost::asio;
using namespace klingq;

void usage() {
  std::cerr << "usage: klingqd --config FILE [--check-config]\n"
               "  --config FILE     YAML configuration (see config/klingq.example.yaml)\n"
               "  --check-config    validate the configuration and exit\n"
               "Signals: SIGTERM/SIGINT stop gracefully (a second one exits at once),\n"
               "SIGHUP reloads the configuration.\n";
}

void apply_logging(const config::Config& cfg) {
  log::Level level = log::Level::info;
  log::parse_level(cfg.log.level, level);
  log::set_level(level);
  log::set_json(cfg.log.json);
}

// Loads config and key together, so a reload either takes both or neither.
struct Loaded {
  config::Config config;
  config::Secret api_key;
};
Loaded load_all(const std::string& path) {
  Loaded loaded{config::load(path), {}};
  loaded.api_key = config::load_api_key(loaded.config);
  return loaded;
}
}  // namespace

int main(int argc, char** argv) {
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

  Loaded loaded;
  try {
    loaded = load_all(config_path);
  } catch (const config::ConfigError& e) {
    std::cerr << "klingqd: " << e.what() << "\n";
    return 2;
  }
  if (check_only) {
    std::cout << "config ok: " << config_path << "\n";
    return 0;
  }
  const auto& cfg = loaded.config;
  apply_logging(cfg);
  try {
    pqxx::connection connection(cfg.database.url);
    db::require_current_schema(connection);
  } catch (const db::SchemaTooOld& e) {
    log::error("schema_too_old", {{"message", e.what()}});
    return 3;
  } catch (const std::exception&) {
    log::error("database_unreachable", {{"url", config::redact_url(cfg.database.url)}});
    return 3;
  }

  asio::io_context io(1);
  db::Pool pool(cfg.database.url, cfg.database.pool_size);
  ops::Metrics metrics;
  http::ClientOptions client_options;
  client_options.max_connections = static_cast<std::size_t>(cfg.api.max_connections);
  client_options.timeout = std::chrono::milliseconds(cfg.api.request_timeout_ms);
  http::Client api(io.get_executor(), cfg.api.base_url, client_options);
  dispatcher::Engine engine(io.get_executor(), pool, api, metrics,
                            dispatcher::options_from(cfg, loaded.api_key));

  std::optional<http::Server> webhook_server;
  std::optional<http::Server> ops_server;
  try {
    if (!cfg.webhook.listen.empty()) {
      http::ServerOptions options;
      options.body_limit = cfg.webhook.max_body_bytes;
      options.read_timeout = std::chrono::milliseconds(cfg.webhook.read_timeout_ms);
      webhook_server.emplace(io.get_executor(), options, engine.webhook_handler());
      auto bound = webhook_server->listen(cfg.webhook.listen);
      webhook_server->start();
      std::cout << "webhook listening on " << bound.address().to_string() << ":" << bound.port() << std::endl;
    }
    if (!cfg.http.listen.empty()) {
      ops_server.emplace(io.get_executor(), http::ServerOptions{},
                         ops::make_ops_handler(metrics, [&engine] { return engine.ready_state(); }));
      auto bound = ops_server->listen(cfg.http.listen);
      ops_server->start();
      std::cout << "http listening on " << bound.address().to_string() << ":" << bound.port() << std::endl;
    }
  } catch (const std::exception& e) {
    log::error("listen_failed", {{"error", e.what()}});
    return 4;
  }

  asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
  int stop_signals = 0;
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signal_number) {
        if (ec) return;
        if (signal_number == SIGHUP) {
          ops::sd::reloading();
          try {
            auto fresh = load_all(config_path);
            apply_logging(fresh.config);
            engine.reload(dispatcher::options_from(fresh.config, fresh.api_key));
            log::notice("config_reloaded", {{"path", config_path}});
          } catch (const std::exception& e) {
            log::error("config_reload_refused", {{"error", e.what()}, {"kept", "previous config"}});
          }
          ops::sd::ready();
        } else if (++stop_signals == 1) {
          log::notice("stopping", {{"signal", std::to_string(signal_number)}});
          ops::sd::stopping();
          engine.stop();
        } else {
          // A second signal: exit now. Claimed rows come back when their leases expire.
          log::warning("exit_now", {{"signal", std::to_string(signal_number)}});
          std::_Exit(0);
        }
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);

  int exit_code = 0;
  asio::co_spawn(io, engine.run(), [&](std::exception_ptr error) {
    if (error) {
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        log::error("engine_failed", {{"error", e.what()}});
        exit_code = 3;
      }
    }
    if (webhook_server) webhook_server->stop();
    if (ops_server) ops_server->stop();
    api.close_idle();
    signals.cancel();
    io.stop();
  });
  log::notice("started", {{"instance", dispatcher::options_from(cfg, loaded.api_key).queue.instance},
                          {"api", cfg.api.base_url},
                          {"plan", config::to_string(cfg.limits.plan)}});
  std::cout << "klingqd ready" << std::endl;
  ops::sd::ready();
  io.run();
  pool.stop();
  return exit_code;
}
