// How klingqd reaches the API and the video origins: api.proxy (or the proxy
// environment), the proxy's credentials and the trust store (api.ca_file, api.ca_dir),
// turned into the one http::ConnectOptions that the API client and the downloads share.
#pragma once

#include "config/config.hpp"
#include "http/connect.hpp"

#include <string>

namespace klingq::dispatcher {

// Throws config::ConfigError naming the key or the environment variable that is wrong
// (a proxy URL lib/http cannot use, an unreadable credentials file, a CA file OpenSSL
// cannot load), so that klingqd refuses to start (exit 2) rather than fail each request.
http::ConnectOptions connect_options_from(const config::Config& config);

// One line for the start-up log: where each scheme goes, credentials redacted.
std::string describe_route(const config::Config& config, const http::ConnectOptions& options);

}  // namespace klingq::dispatcher
