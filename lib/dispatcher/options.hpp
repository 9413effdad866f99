// What the dispatcher's services are told by the config: EngineOptions, built once from
// a validated config::Config by options_from (and again on SIGHUP). Plain values only,
// so every service can include it without the engine or any I/O header.
#pragma once

#include "config/config.hpp"
#include "dispatcher/transactions.hpp"
#include "util/clock.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace klingq::dispatcher {

// outputs.*: where and how finished videos are downloaded.
struct OutputOptions {
  bool download = false;
  std::string dir;
  int max_attempts = 5;
  std::uint64_t max_bytes = std::uint64_t{2} << 30;
  std::chrono::milliseconds timeout{1800000};  // one attempt: redirects, headers, body
  int concurrency = 4;
  Duration retry_base = std::chrono::seconds(2);  // dispatch.retry_base_ms, doubling
  Duration retry_max = std::chrono::seconds(600);
};

struct EngineOptions {
  dispatcher::QueueSettings queue;
  config::Protocol protocol = config::Protocol::graphql;
  config::Secret api_key;
  std::vector<config::Secret> webhook_secrets;
  std::string database_url;                // for the LISTEN connection
  int claim_batch = 100;
  int max_in_flight = 64;                  // concurrent submits of this instance
  Duration safety_poll = std::chrono::seconds(5);
  Duration credits_refresh = std::chrono::seconds(300);
  std::int64_t low_balance_warning = 1000;
  Duration shutdown_grace = std::chrono::seconds(10);
  Duration heartbeat = std::chrono::seconds(5);
  OutputOptions outputs;
};

// Builds the options from a validated config and the API key.
EngineOptions options_from(const config::Config& config, config::Secret api_key);

}  // namespace klingq::dispatcher
