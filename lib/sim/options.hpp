// klingq-sim's command line, parsed into one struct (pure, so it is unit-tested):
//
//   klingq-sim --listen 127.0.0.1:0 --api-key KEY --plan free|starter|pro|enterprise
//              --credits N --webhook-secret S --time-scale X --gen-seconds MIN:MAX --seed N
//              [--rpm N] [--parallel N] [--daily N] [--window-seconds S] [--fail-rate R]
//              [--day-starts-at HH:MM] [--reset-day-header yes|no]
//              [--clock-start ISO8601] [--fault-500 R] [--fault-503 R] [--fault-slow R]
//              [--slow-ms MS] [--fault-reset-before R] [--fault-reset-after R]
//              [--fault-malformed R] [--fault-429-bare R] [--webhook-drop R]
//              [--webhook-duplicate R] [--webhook-delay R] [--webhook-delay-ms MS]
//              [--webhook-reorder R] [--output-bytes N] [--output-fault-500 R]
//              [--output-fault-truncate R] [--output-redirects N] [--log-level LEVEL]
//
// The API key may come from --api-key-file FILE or $KLINGQ_SIM_API_KEY instead, so that
// it need not appear in a process listing; it is never printed.
#pragma once

#include "sim/clock.hpp"
#include "sim/secret.hpp"
#include "sim/state.hpp"

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace klingq::sim {

struct Options {
  std::string listen = "127.0.0.1:8080";  // host:port; port 0 picks a free one
  Secret api_key;                         // required
  Secret webhook_secret;                  // signs webhooks; empty signs with ""
  double time_scale = 1.0;                // simulated seconds per real second
  std::optional<TimePoint> clock_start;   // simulated start instant; default: now
  std::string log_level = "notice";
  Settings settings;
  bool help = false;
  bool version = false;  // --version
};

struct UsageError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// args excludes argv[0]. env_api_key: $KLINGQ_SIM_API_KEY or nullptr. Throws UsageError
// naming the option.
Options parse_options(const std::vector<std::string>& args, const char* env_api_key);

// The --help text.
std::string usage_text();

}  // namespace klingq::sim
