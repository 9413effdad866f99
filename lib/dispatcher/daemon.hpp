// klingqd's process life around the engine, as a library so that daemon/klingqd.cpp is
// wiring only: loading the config with its API key, the start-up database check, the
// webhook and ops listeners, the signals (SIGTERM/SIGINT stop gracefully and a second
// one exits at once, SIGHUP reloads config and key or refuses a bad file and keeps the
// old one), the systemd notifications around them, and what stdout says when:
//
//   "webhook listening on HOST:PORT"   webhook.listen bound
//   "http listening on HOST:PORT"      http.listen bound
//   "klingqd ready"                    everything started (tests wait for this line)
//
// main maps the results to exit codes: 0 clean stop, 2 bad config or usage, 3 database
// or schema problem (also the engine failing), 4 a listener could not bind.
#pragma once

#include "config/config.hpp"

#include <boost/asio/io_context.hpp>

#include <memory>
#include <string>

namespace klingq::http {
class Client;
}
namespace klingq::ops {
class Metrics;
}

namespace klingq::dispatcher {

class Engine;

// The config and the API key, loaded together so that a reload takes both or neither.
struct LoadedConfig {
  config::Config config;
  config::Secret api_key;
  config::ConsoleTokens console_tokens;  // console.operator_token_file / viewer_token_file
};
// Throws config::ConfigError naming the key (or the key or token file) that is wrong.
LoadedConfig load_config(const std::string& path);

// log.level and log.json.
void apply_logging(const config::Config& config);

// klingqd refuses to start unless the database answers and has the current schema:
// false (logged as schema_too_old or database_unreachable) otherwise.
bool database_ready(const config::Config& config);

class Daemon {
 public:
  // All of these outlive the Daemon. The config is the one the engine was built from;
  // SIGHUP reads config_path again.
  Daemon(boost::asio::io_context& io, Engine& engine, http::Client& api, ops::Metrics& metrics,
         std::string config_path, const LoadedConfig& loaded);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Binds webhook.listen and http.listen (those configured) and starts serving them.
  // False (logged as listen_failed) when one cannot bind.
  bool listen();

  // Runs the engine on io until it has stopped (SIGTERM/SIGINT), handling signals
  // meanwhile. True for a clean stop, false when the engine failed (logged as
  // engine_failed).
  bool run();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace klingq::dispatcher
