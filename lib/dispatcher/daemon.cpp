// Daemon: listeners, signals and reload around the engine (daemon.hpp).
#include "dispatcher/daemon.hpp"

#include "console/routes.hpp"
#include "db/migrations.hpp"
#include "db/pool.hpp"
#include "dispatcher/engine.hpp"
#include "dispatcher/options.hpp"
#include "http/client.hpp"
#include "http/server.hpp"
#include "ops/metrics.hpp"
#include "ops/ops_http.hpp"
#include "ops/sd_notify.hpp"
#include "util/log.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/signal_set.hpp>
#include <pqxx/pqxx>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>

namespace klingq::dispatcher {
namespace asio = boost::asio;

LoadedConfig load_config(const std::string& path) {
  LoadedConfig loaded{config::load(path), {}, {}};
  loaded.api_key = config::load_api_key(loaded.config);
  loaded.console_tokens = config::load_console_tokens(loaded.config);
  return loaded;
}

void apply_logging(const config::Config& config) {
  log::Level level = log::Level::info;
  log::parse_level(config.log.level, level);
  log::set_level(level);
  log::set_json(config.log.json);
  log::set_job_events(config.log.job_events);
}

bool database_ready(const config::Config& config) {
  try {
    pqxx::connection connection(config.database.url);
    db::require_current_schema(connection);
  } catch (const db::SchemaTooOld& e) {
    log::error("schema_too_old", {{"message", e.what()}});
    return false;
  } catch (const std::exception& e) {
    // libpq's reason (refused, no such host, authentication failed, ...), as the CLI says.
    log::error("database_unreachable", {{"url", config::redact_url(config.database.url)},
                                        {"reason", config::redact_database_error(config.database.url, e.what())}});
    return false;
  }
  return true;
}

struct Daemon::State {
  asio::io_context& io;
  Engine& engine;
  http::Client& api;
  ops::Metrics& metrics;
  std::string config_path;
  LoadedConfig loaded;  // what the engine was started with (the "started" line)
  std::optional<http::Server> webhook_server;
  std::optional<http::Server> ops_server;
  // The console's own connections, so that people looking at it never take a
  // connection the dispatcher is waiting for.
  std::optional<db::Pool> console_pool;
  std::function<void(console::Access)> replace_console_tokens;  // SIGHUP
};

Daemon::Daemon(asio::io_context& io, Engine& engine, http::Client& api, ops::Metrics& metrics,
               std::string config_path, const LoadedConfig& loaded)
    : state_(new State{io, engine, api, metrics, std::move(config_path), loaded, {}, {}, {}, {}}) {}

Daemon::~Daemon() = default;

bool Daemon::listen() {
  auto& s = *state_;
  const auto& cfg = s.loaded.config;
  try {
    if (!cfg.webhook.listen.empty()) {
      http::ServerOptions options;
      options.body_limit = cfg.webhook.max_body_bytes;
      options.read_timeout = std::chrono::milliseconds(cfg.webhook.read_timeout_ms);
      s.webhook_server.emplace(s.io.get_executor(), options, s.engine.webhook_handler());
      auto bound = s.webhook_server->listen(cfg.webhook.listen);
      s.webhook_server->start();
      std::cout << "webhook listening on " << bound.address().to_string() << ":" << bound.port() << std::endl;
    }
    if (!cfg.http.listen.empty()) {
      auto& engine = s.engine;
      auto ops_handler = ops::make_ops_handler(s.metrics, [&engine] { return engine.ready_state(); });
      // The console shares http.listen with /metrics (lib/console).
      console::Options options;
      const auto& cost = cfg.credits.cost;
      options.settings.prices = {cost.standard_5, cost.standard_10, cost.professional_5, cost.professional_10};
      options.settings.reserve = cfg.credits.reserve;
      options.settings.window_seconds = cfg.limits.window_seconds;
      // Polls take at most poll.share of the window, and are rare with webhooks.
      options.settings.requests_per_job = cfg.webhook.listen.empty() ? 1.0 / std::max(0.05, 1.0 - cfg.poll.share) : 1.0;
      options.settings.default_day_start_ms = std::int64_t{cfg.limits.day_starts_at_minutes.value_or(0)} * 60000;
      options.login_limit.per_address = cfg.console.login_failures_per_address;
      options.login_limit.overall = cfg.console.login_failures_overall;
      options.login_limit.window = std::chrono::seconds(cfg.console.login_failure_window_seconds);
      options.search_scan_rows = cfg.console.search_scan_rows;
      s.console_pool.emplace(cfg.database.url, 2);
      auto console = console::make_console(*s.console_pool, console::Access(s.loaded.console_tokens), options,
                                           std::move(ops_handler));
      s.replace_console_tokens = console.replace_access;
      s.ops_server.emplace(s.io.get_executor(), console::server_options(options), std::move(console.handler));
      auto bound = s.ops_server->listen(cfg.http.listen);
      s.ops_server->start();
      std::cout << "http listening on " << bound.address().to_string() << ":" << bound.port() << std::endl;
    }
  } catch (const std::exception& e) {
    log::error("listen_failed", {{"error", e.what()}});
    return false;
  }
  return true;
}

bool Daemon::run() {
  auto& s = *state_;
  asio::signal_set signals(s.io, SIGTERM, SIGINT, SIGHUP);
  int stop_signals = 0;
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signal_number) {
        if (ec) return;
        if (signal_number == SIGHUP) {
          ops::sd::reloading();
          try {
            auto fresh = load_config(s.config_path);
            // What a reload cannot apply keeps its running value, and each such key is
            // named: a reload that says "reloaded" must not have ignored anything.
            const auto kept = config::keep_restart_keys(s.loaded.config, fresh.config);
            apply_logging(fresh.config);
            s.engine.reload(options_from(fresh.config, fresh.api_key));
            // The console's tokens (http.listen itself is bound once, at start).
            if (s.replace_console_tokens) s.replace_console_tokens(console::Access(fresh.console_tokens));
            s.loaded = fresh;
            if (kept.empty()) {
              log::notice("config_reloaded", {{"path", s.config_path}});
            } else {
              std::string names;
              for (const auto& key : kept) {
                log::warning("config_change_needs_restart",
                             {{"key", key}, {"kept", "running value until klingqd restarts"}});
                names += (names.empty() ? "" : ",") + key;
              }
              log::warning("config_reloaded_partly", {{"path", s.config_path}, {"needs_restart", names}});
            }
          } catch (const std::exception& e) {
            log::error("config_reload_refused", {{"error", e.what()}, {"kept", "previous config"}});
          }
          ops::sd::ready();
        } else if (++stop_signals == 1) {
          log::notice("stopping", {{"signal", std::to_string(signal_number)}});
          ops::sd::stopping();
          s.engine.stop();
        } else {
          // A second signal: exit now. Claimed rows come back when their leases expire.
          log::warning("exit_now", {{"signal", std::to_string(signal_number)}});
          std::_Exit(0);
        }
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);

  bool clean = true;
  asio::co_spawn(s.io, s.engine.run(), [&](std::exception_ptr error) {
    if (error) {
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        log::error("engine_failed", {{"error", e.what()}});
        clean = false;
      }
    }
    if (s.webhook_server) s.webhook_server->stop();
    if (s.ops_server) s.ops_server->stop();
    s.api.close_idle();
    signals.cancel();
    s.io.stop();
  });
  const auto& cfg = s.loaded.config;
  log::notice("started", {{"instance", options_from(cfg, s.loaded.api_key).queue.instance},
                          {"api", cfg.api.base_url},
                          {"plan", config::to_string(cfg.limits.plan)}});
  std::cout << "klingqd ready" << std::endl;
  ops::sd::ready();
  s.io.run();
  return clean;
}

}  // namespace klingq::dispatcher
