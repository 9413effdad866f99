// connect_options_from: config keys and proxy variables → http::ConnectOptions.
#include "dispatcher/connect_options.hpp"

#include <stdexcept>

namespace klingq::dispatcher {

namespace {

// A proxy URL parsed by lib/http, with the credentials file applied when the URL has
// none. `source` is the key or variable the URL came from, for the error.
std::optional<http::Proxy> proxy_from(const std::string& url, const std::string& source,
                                      const config::Secret& credentials) {
  if (url.empty()) return std::nullopt;
  http::Proxy proxy;
  try {
    proxy = http::parse_proxy_url(url);
  } catch (const std::invalid_argument& e) {
    // lib/http's message never repeats the credentials; the URL is not repeated either.
    throw config::ConfigError((source == "api.proxy" ? "config key 'api.proxy': " : "environment variable " + source + ": ") +
                              e.what());
  }
  if (proxy.authorization.empty() && !credentials.empty()) {
    proxy.authorization = http::basic_authorization(credentials.reveal());
    proxy.display = "http://<redacted>@" + proxy.display.substr(std::string("http://").size());
  }
  return proxy;
}

}  // namespace

http::ConnectOptions connect_options_from(const config::Config& config) {
  http::ConnectOptions options;
  const auto credentials = config::load_proxy_credentials(config);
  const auto choice = config::proxy_choice(config);
  options.https_proxy = proxy_from(choice.https, choice.https_source, credentials);
  options.http_proxy = proxy_from(choice.http, choice.http_source, credentials);
  options.no_proxy = choice.no_proxy;
  options.ca_file = config.api.ca_file;
  options.ca_dir = config.api.ca_dir;
  if (auto problem = http::Connector::check_trust_store(options); !problem.empty()) {
    const char* key = problem.starts_with("cannot use the CA directory") ? "api.ca_dir" : "api.ca_file";
    throw config::ConfigError(std::string("config key '") + key + "': " + problem);
  }
  return options;
}

std::string describe_route(const config::Config& config, const http::ConnectOptions& options) {
  const auto choice = config::proxy_choice(config);
  auto one = [](const std::optional<http::Proxy>& proxy, const std::string& source) {
    return proxy ? proxy->display + " (" + source + ")" : std::string("direct");
  };
  std::string line = "https " + one(options.https_proxy, choice.https_source) + ", http " +
                     one(options.http_proxy, choice.http_source);
  if (!options.no_proxy.empty()) line += ", no_proxy " + options.no_proxy;
  if (!options.ca_file.empty()) line += ", ca_file " + options.ca_file;
  if (!options.ca_dir.empty()) line += ", ca_dir " + options.ca_dir;
  return line;
}

}  // namespace klingq::dispatcher
