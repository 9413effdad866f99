// YAML → Config through one table of keys, so that parsing, unknown-key detection and
// the documentation test share a single list.
#include "config/config.hpp"

#include <libpq-fe.h>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <regex>
#include <set>
#include <sstream>

namespace klingq::config {
namespace {

using Setter = std::function<void(const YAML::Node&, Config&, const std::string& key)>;

struct Key {
  const char* name;
  Setter set;
};

[[noreturn]] void fail(const std::string& key, const std::string& why) {
  throw ConfigError("config key '" + key + "': " + why);
}

template <typename T>
T scalar(const YAML::Node& node, const std::string& key, const char* type_name) {
  if (!node.IsScalar()) fail(key, std::string("expected ") + type_name);
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    fail(key, std::string("expected ") + type_name + ", got '" + node.Scalar() + "'");
  }
}

template <typename Member>
Setter field(Member Config::*section, auto member_of_section) {
  return [=](const YAML::Node& node, Config& config, const std::string& key) {
    auto& target = config.*section.*member_of_section;
    using T = std::remove_reference_t<decltype(target)>;
    if constexpr (std::is_same_v<T, std::string>) {
      target = scalar<std::string>(node, key, "a string");
    } else if constexpr (std::is_same_v<T, bool>) {
      target = scalar<bool>(node, key, "true or false");
    } else if constexpr (std::is_same_v<T, double>) {
      target = scalar<double>(node, key, "a number");
    } else if constexpr (std::is_same_v<T, std::optional<std::int64_t>>) {
      target = scalar<std::int64_t>(node, key, "an integer");
    } else if constexpr (std::is_integral_v<T>) {
      target = scalar<T>(node, key, "an integer");
    } else if constexpr (std::is_same_v<T, Secret>) {
      target = Secret(scalar<std::string>(node, key, "a string"));
    } else {
      static_assert(sizeof(T) == 0, "no YAML reader for this field type");
    }
  };
}

// The cost table sits one level deeper (credits.cost.*) than field() reaches.
Setter cost_field(std::int64_t CostTable::*member) {
  return [member](const YAML::Node& node, Config& config, const std::string& key) {
    config.credits.cost.*member = scalar<std::int64_t>(node, key, "an integer");
  };
}

Plan parse_plan(const std::string& text, const std::string& key) {
  if (text == "free") return Plan::free;
  if (text == "starter") return Plan::starter;
  if (text == "pro") return Plan::pro;
  if (text == "enterprise") return Plan::enterprise;
  fail(key, "expected free, starter, pro or enterprise, got '" + text + "'");
}

bool two_digits(std::string_view text, std::size_t at, int& out) {
  if (at + 2 > text.size() || !std::isdigit(static_cast<unsigned char>(text[at])) ||
      !std::isdigit(static_cast<unsigned char>(text[at + 1]))) {
    return false;
  }
  out = (text[at] - '0') * 10 + (text[at + 1] - '0');
  return true;
}

const std::vector<Key>& keys() {
  static const std::vector<Key> table = {
      {"database.url", field(&Config::database, &DatabaseConfig::url)},
      {"database.pool_size", field(&Config::database, &DatabaseConfig::pool_size)},
      {"api.base_url", field(&Config::api, &ApiConfig::base_url)},
      {"api.protocol",
       [](const YAML::Node& node, Config& config, const std::string& key) {
         auto text = scalar<std::string>(node, key, "a string");
         if (text == "graphql") config.api.protocol = Protocol::graphql;
         else if (text == "rest") config.api.protocol = Protocol::rest;
         else fail(key, "expected graphql or rest, got '" + text + "'");
       }},
      {"api.key_file", field(&Config::api, &ApiConfig::key_file)},
      {"api.request_timeout_ms", field(&Config::api, &ApiConfig::request_timeout_ms)},
      {"api.max_connections", field(&Config::api, &ApiConfig::max_connections)},
      {"api.poll_counts_against_rpm", field(&Config::api, &ApiConfig::poll_counts_against_rpm)},
      {"api.proxy", field(&Config::api, &ApiConfig::proxy)},
      {"api.proxy_credentials_file", field(&Config::api, &ApiConfig::proxy_credentials_file)},
      {"api.no_proxy", field(&Config::api, &ApiConfig::no_proxy)},
      {"api.ca_file", field(&Config::api, &ApiConfig::ca_file)},
      {"api.ca_dir", field(&Config::api, &ApiConfig::ca_dir)},
      {"limits.plan",
       [](const YAML::Node& node, Config& config, const std::string& key) {
         config.limits.plan = parse_plan(scalar<std::string>(node, key, "a string"), key);
       }},
      {"limits.rpm", field(&Config::limits, &LimitsConfig::rpm)},
      {"limits.parallel", field(&Config::limits, &LimitsConfig::parallel)},
      {"limits.daily", field(&Config::limits, &LimitsConfig::daily)},
      {"limits.window_seconds", field(&Config::limits, &LimitsConfig::window_seconds)},
      {"limits.day_starts_at",
       [](const YAML::Node& node, Config& config, const std::string& key) {
         auto text = scalar<std::string>(node, key, "a string");
         auto minutes = parse_day_start(text);
         if (!minutes) fail(key, "expected HH:MM with Z or an offset, e.g. \"16:00Z\" or \"00:00+08:00\", got '" + text + "'");
         config.limits.day_starts_at_minutes = *minutes;
       }},
      {"credits.reserve", field(&Config::credits, &CreditsConfig::reserve)},
      {"credits.low_balance_warning", field(&Config::credits, &CreditsConfig::low_balance_warning)},
      {"credits.refresh_seconds", field(&Config::credits, &CreditsConfig::refresh_seconds)},
      {"credits.starvation_seconds", field(&Config::credits, &CreditsConfig::starvation_seconds)},
      {"credits.cost.standard_5", cost_field(&CostTable::standard_5)},
      {"credits.cost.standard_10", cost_field(&CostTable::standard_10)},
      {"credits.cost.professional_5", cost_field(&CostTable::professional_5)},
      {"credits.cost.professional_10", cost_field(&CostTable::professional_10)},
      {"dispatch.instance_id", field(&Config::dispatch, &DispatchConfig::instance_id)},
      {"dispatch.claim_batch", field(&Config::dispatch, &DispatchConfig::claim_batch)},
      {"dispatch.lease_seconds", field(&Config::dispatch, &DispatchConfig::lease_seconds)},
      {"dispatch.safety_poll_ms", field(&Config::dispatch, &DispatchConfig::safety_poll_ms)},
      {"dispatch.retry_base_ms", field(&Config::dispatch, &DispatchConfig::retry_base_ms)},
      {"dispatch.retry_max_ms", field(&Config::dispatch, &DispatchConfig::retry_max_ms)},
      {"dispatch.max_in_flight_requests",
       field(&Config::dispatch, &DispatchConfig::max_in_flight_requests)},
      {"poll.share", field(&Config::poll, &PollConfig::share)},
      {"poll.first_after_seconds", field(&Config::poll, &PollConfig::first_after_seconds)},
      {"poll.max_interval_seconds", field(&Config::poll, &PollConfig::max_interval_seconds)},
      {"poll.webhook_grace_seconds", field(&Config::poll, &PollConfig::webhook_grace_seconds)},
      {"poll.min_interval_ms", field(&Config::poll, &PollConfig::min_interval_ms)},
      {"poll.horizon_seconds", field(&Config::poll, &PollConfig::horizon_seconds)},
      {"webhook.listen", field(&Config::webhook, &WebhookConfig::listen)},
      {"webhook.public_url", field(&Config::webhook, &WebhookConfig::public_url)},
      {"webhook.secrets",
       [](const YAML::Node& node, Config& config, const std::string& key) {
         if (!node.IsSequence()) fail(key, "expected a list of strings");
         config.webhook.secrets.clear();
         for (std::size_t i = 0; i < node.size(); ++i) {
           config.webhook.secrets.emplace_back(
               scalar<std::string>(node[i], key + "[" + std::to_string(i) + "]", "a string"));
         }
       }},
      {"webhook.max_body_bytes", field(&Config::webhook, &WebhookConfig::max_body_bytes)},
      {"webhook.read_timeout_ms", field(&Config::webhook, &WebhookConfig::read_timeout_ms)},
      {"http.listen", field(&Config::http, &HttpConfig::listen)},
      {"log.level", field(&Config::log, &LogConfig::level)},
      {"log.json", field(&Config::log, &LogConfig::json)},
      {"log.job_events", field(&Config::log, &LogConfig::job_events)},
      {"outputs.download", field(&Config::outputs, &OutputsConfig::download)},
      {"outputs.dir", field(&Config::outputs, &OutputsConfig::dir)},
      {"outputs.max_attempts", field(&Config::outputs, &OutputsConfig::max_attempts)},
      {"outputs.max_bytes", field(&Config::outputs, &OutputsConfig::max_bytes)},
      {"outputs.timeout_seconds", field(&Config::outputs, &OutputsConfig::timeout_seconds)},
      {"outputs.concurrency", field(&Config::outputs, &OutputsConfig::concurrency)},
      {"console.operator_token_file", field(&Config::console, &ConsoleConfig::operator_token_file)},
      {"console.viewer_token_file", field(&Config::console, &ConsoleConfig::viewer_token_file)},
      {"console.login_failures_per_address", field(&Config::console, &ConsoleConfig::login_failures_per_address)},
      {"console.login_failures_overall", field(&Config::console, &ConsoleConfig::login_failures_overall)},
      {"console.login_failure_window_seconds",
       field(&Config::console, &ConsoleConfig::login_failure_window_seconds)},
      {"console.search_scan_rows", field(&Config::console, &ConsoleConfig::search_scan_rows)},
  };
  return table;
}

// Walks the YAML tree; every leaf must be a known key.
void apply(const YAML::Node& node, const std::string& prefix, Config& config) {
  std::set<std::string> seen;
  for (const auto& item : node) {
    // A mapping or list used as a key ("? {a: 1}: x") would throw yaml-cpp's conversion
    // error, which callers do not expect from a bad config.
    if (!item.first.IsScalar()) fail(prefix.empty() ? "(top level)" : prefix, "keys must be plain names");
    const auto name = item.first.as<std::string>();
    const auto key = prefix.empty() ? name : prefix + "." + name;
    // yaml-cpp keeps both entries of a repeated key and the later one would silently win:
    // an edit appended below an old value is then a surprise, so refuse it.
    if (!seen.insert(name).second) fail(key, "appears twice in the same section (remove one)");
    const auto& table = keys();
    auto known = std::find_if(table.begin(), table.end(),
                              [&](const Key& k) { return key == k.name; });
    if (known != table.end()) {
      if (!item.second.IsNull()) known->set(item.second, config, key);
      continue;
    }
    const bool is_section = std::any_of(table.begin(), table.end(), [&](const Key& k) {
      return std::string_view(k.name).starts_with(key + ".");
    });
    if (is_section && item.second.IsMap()) {
      apply(item.second, key, config);
    } else if (is_section && item.second.IsNull()) {
      continue;  // an empty section keeps its defaults
    } else if (is_section) {
      // "log: debug": the key exists, as a section; saying "unknown key" would mislead.
      std::string example;
      for (const auto& k : keys()) {
        if (std::string_view(k.name).starts_with(key + ".")) { example = k.name; break; }
      }
      fail(key, "is a section: expected keys under it (such as " + example.substr(key.size() + 1) + ": ...), got " +
                    (item.second.IsScalar() ? "the value '" + item.second.Scalar() + "'" : std::string("a list")));
    } else {
      fail(key, "unknown key");
    }
  }
}

bool valid_listen(const std::string& text) {
  static const std::regex pattern(R"(^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+):[0-9]{1,5}$)");
  return std::regex_match(text, pattern);
}

}  // namespace

std::optional<int> parse_day_start(std::string_view text) {
  int hour = 0, minute = 0;
  if (text.size() < 6 || !two_digits(text, 0, hour) || text[2] != ':' || !two_digits(text, 3, minute) ||
      hour > 23 || minute > 59) {
    return std::nullopt;
  }
  int offset = 0;  // the zone's minutes east of UTC
  auto zone = text.substr(5);
  if (zone != "Z") {
    int zone_hour = 0, zone_minute = 0;
    if (zone.size() != 6 || (zone[0] != '+' && zone[0] != '-') || !two_digits(zone, 1, zone_hour) ||
        zone[3] != ':' || !two_digits(zone, 4, zone_minute) || zone_hour > 14 || zone_minute > 59) {
      return std::nullopt;
    }
    offset = (zone_hour * 60 + zone_minute) * (zone[0] == '-' ? -1 : 1);
  }
  constexpr int minutes_per_day = 24 * 60;
  return ((hour * 60 + minute - offset) % minutes_per_day + minutes_per_day) % minutes_per_day;
}

PlanLimits plan_limits(Plan plan) {
  switch (plan) {
    case Plan::free: return {10, 1, 100};
    case Plan::starter: return {30, 3, 1000};
    case Plan::pro: return {60, 10, 10000};
    case Plan::enterprise: return {0, 0, 0};
  }
  return {10, 1, 100};
}

const char* to_string(Plan plan) {
  switch (plan) {
    case Plan::free: return "free";
    case Plan::starter: return "starter";
    case Plan::pro: return "pro";
    case Plan::enterprise: return "enterprise";
  }
  return "?";
}

const char* to_string(Protocol protocol) {
  return protocol == Protocol::graphql ? "graphql" : "rest";
}

PlanLimits Config::starting_limits() const {
  auto result = plan_limits(limits.plan);
  if (limits.rpm) result.rpm = *limits.rpm;
  if (limits.parallel) result.parallel = *limits.parallel;
  if (limits.daily) result.daily = *limits.daily;
  return result;
}

void Config::validate() const {
  auto require = [](bool ok, const char* key, const std::string& why) {
    if (!ok) fail(key, why);
  };
  require(!database.url.empty(), "database.url", "must not be empty");
  require(database.pool_size >= 1 && database.pool_size <= 64, "database.pool_size",
          "must be between 1 and 64");
  static const std::regex base_url(R"(^https?://[^/\s]+(/\S*)?$)");
  require(std::regex_match(api.base_url, base_url), "api.base_url",
          "must be an http:// or https:// URL");
  require(api.request_timeout_ms >= 100, "api.request_timeout_ms", "must be at least 100");
  require(api.max_connections >= 1 && api.max_connections <= 1024, "api.max_connections",
          "must be between 1 and 1024");
  // The syntax only; lib/http parses the URL when klingqd starts (so do the variables).
  static const std::regex proxy_url(R"(^(http://)?([^@/\s]+@)?[^@/\s]+/?$)", std::regex::icase);
  require(api.proxy.empty() || std::regex_match(api.proxy, proxy_url), "api.proxy",
          api.proxy.rfind("https://", 0) == 0
              ? "https:// proxies are not supported (klingq speaks plain HTTP to the proxy, TLS through its tunnel); use http://"
              : "must be http://[user:password@]host[:port]");
  require(api.proxy_credentials_file.empty() || api.proxy.find('@') == std::string::npos,
          "api.proxy_credentials_file", "is set but api.proxy carries credentials too: give them once");
  require(api.no_proxy.empty() || !api.proxy.empty(), "api.no_proxy",
          "is set but api.proxy is not (without api.proxy, $no_proxy/$NO_PROXY apply)");
  {
    std::error_code error;
    require(api.ca_file.empty() || std::filesystem::is_regular_file(api.ca_file, error), "api.ca_file",
            "'" + api.ca_file + "' is not a file (a PEM file of CA certificates)");
    require(api.ca_dir.empty() || std::filesystem::is_directory(api.ca_dir, error), "api.ca_dir",
            "'" + api.ca_dir + "' is not a directory (of hashed CA certificates, see c_rehash)");
  }
  require(!limits.rpm || *limits.rpm >= 0, "limits.rpm", "must not be negative (0 = unlimited)");
  require(!limits.parallel || *limits.parallel >= 0, "limits.parallel",
          "must not be negative (0 = unlimited)");
  require(!limits.daily || *limits.daily >= 0, "limits.daily",
          "must not be negative (0 = unlimited)");
  require(limits.window_seconds >= 1, "limits.window_seconds", "must be at least 1");
  require(!limits.day_starts_at_minutes || (*limits.day_starts_at_minutes >= 0 && *limits.day_starts_at_minutes < 24 * 60),
          "limits.day_starts_at", "must be a time of day");
  require(credits.reserve >= 0, "credits.reserve", "must not be negative");
  require(credits.low_balance_warning >= 0, "credits.low_balance_warning", "must not be negative");
  require(credits.refresh_seconds >= 1, "credits.refresh_seconds", "must be at least 1");
  require(credits.starvation_seconds >= 1, "credits.starvation_seconds", "must be at least 1");
  require(credits.cost.standard_5 > 0, "credits.cost.standard_5", "must be positive");
  require(credits.cost.standard_10 > 0, "credits.cost.standard_10", "must be positive");
  require(credits.cost.professional_5 > 0, "credits.cost.professional_5", "must be positive");
  require(credits.cost.professional_10 > 0, "credits.cost.professional_10", "must be positive");
  require(dispatch.claim_batch >= 1 && dispatch.claim_batch <= 10000, "dispatch.claim_batch",
          "must be between 1 and 10000");
  require(dispatch.lease_seconds >= 5, "dispatch.lease_seconds", "must be at least 5");
  // In 64 bits: a lease of a few million seconds would overflow int.
  require(std::int64_t{dispatch.lease_seconds} * 1000 > std::int64_t{api.request_timeout_ms} * 2,
          "dispatch.lease_seconds",
          "must exceed twice api.request_timeout_ms, or a slow request outlives its lease");
  require(dispatch.safety_poll_ms >= 10, "dispatch.safety_poll_ms", "must be at least 10");
  require(dispatch.retry_base_ms >= 1, "dispatch.retry_base_ms", "must be at least 1");
  require(dispatch.retry_max_ms >= dispatch.retry_base_ms, "dispatch.retry_max_ms",
          "must be at least dispatch.retry_base_ms");
  require(dispatch.max_in_flight_requests >= 0, "dispatch.max_in_flight_requests",
          "must not be negative (0: api.max_connections + dispatch.claim_batch)");
  require(poll.share > 0 && poll.share <= 1, "poll.share", "must be in (0, 1]");
  require(poll.first_after_seconds >= 0, "poll.first_after_seconds", "must not be negative");
  require(poll.max_interval_seconds >= 1, "poll.max_interval_seconds", "must be at least 1");
  require(poll.webhook_grace_seconds >= 0, "poll.webhook_grace_seconds", "must not be negative");
  require(poll.min_interval_ms >= 100, "poll.min_interval_ms", "must be at least 100");
  require(poll.horizon_seconds >= 1, "poll.horizon_seconds", "must be at least 1");
  require(webhook.listen.empty() || valid_listen(webhook.listen), "webhook.listen",
          "must be host:port, e.g. 0.0.0.0:8081");
  require(webhook.listen.empty() || !webhook.secrets.empty(), "webhook.secrets",
          "at least one secret is needed when webhook.listen is set (unsigned webhooks are refused)");
  for (const auto& secret : webhook.secrets) {
    require(!secret.empty(), "webhook.secrets", "a secret must not be empty");
  }
  require(webhook.public_url.empty() || std::regex_match(webhook.public_url, base_url),
          "webhook.public_url", "must be an http:// or https:// URL");
  require(webhook.public_url.empty() || !webhook.listen.empty(), "webhook.public_url",
          "is set but webhook.listen is not: nothing would receive the webhooks");
  require(webhook.max_body_bytes >= 1024, "webhook.max_body_bytes", "must be at least 1024");
  require(webhook.read_timeout_ms >= 100, "webhook.read_timeout_ms", "must be at least 100");
  require(http.listen.empty() || valid_listen(http.listen), "http.listen",
          "must be host:port, e.g. 127.0.0.1:9187");
  require(log.level == "debug" || log.level == "info" || log.level == "notice" ||
              log.level == "warning" || log.level == "error",
          "log.level", "expected debug, info, notice, warning or error, got '" + log.level + "'");
  require(!outputs.download || !outputs.dir.empty(), "outputs.dir",
          "must be set when outputs.download is true");
  require(outputs.max_attempts >= 1 && outputs.max_attempts <= 100, "outputs.max_attempts",
          "must be between 1 and 100");
  require(outputs.max_bytes >= 1, "outputs.max_bytes", "must be at least 1");
  require(outputs.timeout_seconds >= 1, "outputs.timeout_seconds", "must be at least 1");
  require(outputs.concurrency >= 1 && outputs.concurrency <= 256, "outputs.concurrency",
          "must be between 1 and 256");
  require(console.operator_token_file.empty() || !http.listen.empty(), "console.operator_token_file",
          "is set but http.listen is not: the console is served on http.listen");
  require(console.viewer_token_file.empty() || !http.listen.empty(), "console.viewer_token_file",
          "is set but http.listen is not: the console is served on http.listen");
  require(console.login_failures_per_address >= 1 && console.login_failures_per_address <= 1000000,
          "console.login_failures_per_address", "must be between 1 and 1000000");
  require(console.login_failures_overall >= 1 && console.login_failures_overall <= 1000000,
          "console.login_failures_overall", "must be between 1 and 1000000");
  require(console.login_failure_window_seconds >= 1 && console.login_failure_window_seconds <= 86400,
          "console.login_failure_window_seconds", "must be between 1 and 86400 (a day)");
  require(console.search_scan_rows >= 1 && console.search_scan_rows <= 100000000, "console.search_scan_rows",
          "must be between 1 and 100000000");
}

Config parse(const std::string& yaml_text) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError("config is not valid YAML: " + std::string(e.what()));
  }
  Config config;
  if (root.IsNull()) return config;
  if (!root.IsMap()) throw ConfigError("config must be a YAML mapping of sections");
  apply(root, "", config);
  return config;
}

Config load(const std::string& path) {
  // An ifstream opens a directory and reads it as empty: that would be "config ok", all
  // defaults, and the CLI would fall back to the default database without a word.
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored)) {
    throw ConfigError("config file " + path + " is a directory, not a YAML file");
  }
  std::ifstream file(path);
  if (!file) throw ConfigError("cannot read config file " + path);
  std::stringstream text;
  text << file.rdbuf();
  auto config = parse(text.str());
  if (const char* url = std::getenv("KLINGQ_DATABASE_URL"); url && *url) {
    config.database.url = url;
  }
  config.validate();
  return config;
}

std::vector<std::string> known_keys() {
  std::vector<std::string> names;
  for (const auto& key : keys()) names.emplace_back(key.name);
  return names;
}

namespace {
std::string read_trimmed(const std::string& path) {
  std::ifstream file(path);
  if (!file) return {};
  std::stringstream text;
  text << file.rdbuf();
  auto value = text.str();
  while (!value.empty() && (value.back() == '\n' || value.back() == '\r' || value.back() == ' '))
    value.pop_back();
  return value;
}
}  // namespace

namespace {
// $KLINGQ_API_KEY, read once: the variable is then removed and its bytes in the
// process's original environment block overwritten, because unsetenv alone leaves them
// readable in /proc/<pid>/environ. Later calls (SIGHUP) get the copy kept here.
Secret api_key_from_environment() {
  static std::mutex mutex;
  static std::optional<Secret> taken;
  std::lock_guard lock(mutex);
  if (!taken) {
    char* env = std::getenv("KLINGQ_API_KEY");
    taken = Secret(env ? std::string(env) : std::string());
    if (env) {
      std::memset(env, 0, std::strlen(env));
      ::unsetenv("KLINGQ_API_KEY");
    }
  }
  return *taken;
}
}  // namespace

Secret load_api_key(const Config& config) {
  if (!config.api.key_file.empty()) {
    auto key = read_trimmed(config.api.key_file);
    if (key.empty()) fail("api.key_file", "file is missing, unreadable or empty");
    return Secret(key);
  }
  if (auto key = api_key_from_environment(); !key.empty()) return key;
  if (const char* dir = std::getenv("CREDENTIALS_DIRECTORY"); dir && *dir) {
    auto key = read_trimmed(std::string(dir) + "/api-key");
    if (!key.empty()) return Secret(key);
  }
  throw ConfigError(
      "no API key: set api.key_file, the KLINGQ_API_KEY environment variable, or a systemd "
      "credential named api-key");
}

namespace {
// libpq's own parse of a connection string: the options it would use, or nullptr when it
// refuses the string. Freed by the deleter.
struct ConninfoFree {
  void operator()(PQconninfoOption* options) const { PQconninfoFree(options); }
};
using Conninfo = std::unique_ptr<PQconninfoOption, ConninfoFree>;
Conninfo parse_conninfo(const std::string& text) {
  char* error = nullptr;
  Conninfo options(PQconninfoParse(text.c_str(), &error));
  if (error) PQfreemem(error);  // it may quote a piece of the string: never shown
  return options;
}
std::optional<std::string> option_value(const Conninfo& options, std::string_view name) {
  for (auto* option = options.get(); option && option->keyword; ++option) {
    if (name == option->keyword && option->val) return std::string(option->val);
  }
  return std::nullopt;
}
constexpr const char* redacted_text = "<redacted>";

bool uri_form(std::string_view text) {
  return text.starts_with("postgresql://") || text.starts_with("postgres://");
}

// key=value form, tokenised by libpq's rules (conninfo_parse): names end at space or
// '='; a value is either quoted with ' or runs to the next unescaped space; a backslash
// escapes the next character in both. The value of every "password" is replaced.
std::string redact_key_value(const std::string& text) {
  std::string out;
  std::size_t i = 0;
  auto space = [&](std::size_t at) { return at < text.size() && std::isspace(static_cast<unsigned char>(text[at])); };
  while (i < text.size()) {
    std::size_t start = i;
    while (space(i)) ++i;
    out.append(text, start, i - start);
    std::size_t name_start = i;
    while (i < text.size() && text[i] != '=' && !space(i)) ++i;
    const std::string name = text.substr(name_start, i - name_start);
    std::size_t before_equals = i;
    while (space(i)) ++i;
    if (i < text.size() && text[i] == '=') ++i;
    while (space(i)) ++i;
    out.append(text, name_start, i - name_start);
    (void)before_equals;
    std::size_t value_start = i;
    if (i < text.size() && text[i] == '\'') {
      for (++i; i < text.size() && text[i] != '\''; ++i) {
        if (text[i] == '\\') ++i;
      }
      if (i < text.size()) ++i;
    } else {
      for (; i < text.size() && !space(i); ++i) {
        if (text[i] == '\\') ++i;
      }
    }
    if (i > text.size()) i = text.size();
    if (name == "password") out += redacted_text;
    else out.append(text, value_start, i - value_start);
  }
  return out;
}

// URI form: postgresql://[user[:password]@]hosts[/dbname][?k=v&...]. libpq ends the
// user info at the first '@' before any '/'; the query may carry password= too.
std::string redact_uri(const std::string& text) {
  const std::size_t after_scheme = text.find("://") + 3;
  std::string out = text.substr(0, after_scheme);
  std::size_t rest = after_scheme;
  std::size_t cut = text.find_first_of("@/", after_scheme);
  if (cut != std::string::npos && text[cut] == '@') {
    std::size_t colon = text.find(':', after_scheme);
    if (colon != std::string::npos && colon < cut) out += text.substr(after_scheme, colon - after_scheme) + ":" + redacted_text + "@";
    else out += text.substr(after_scheme, cut + 1 - after_scheme);
    rest = cut + 1;
  }
  std::size_t query = text.find('?', rest);
  if (query == std::string::npos) return out + text.substr(rest);
  out += text.substr(rest, query + 1 - rest);
  std::size_t i = query + 1;
  while (i <= text.size()) {
    std::size_t amp = text.find('&', i);
    if (amp == std::string::npos) amp = text.size();
    std::string pair = text.substr(i, amp - i);
    if (pair.starts_with("password=")) pair = std::string("password=") + redacted_text;
    out += pair;
    if (amp < text.size()) out += '&';
    i = amp + 1;
  }
  return out;
}
}  // namespace

bool valid_connection_string(const std::string& url) { return parse_conninfo(url) != nullptr; }

ProxyChoice proxy_choice(const Config& config) {
  ProxyChoice choice;
  if (!config.api.proxy.empty()) {
    choice.https = choice.http = config.api.proxy;
    choice.https_source = choice.http_source = "api.proxy";
    choice.no_proxy = config.api.no_proxy;
    return choice;
  }
  auto first_set = [](std::initializer_list<const char*> names, std::string& value, std::string& source) {
    for (const char* name : names) {
      if (const char* text = std::getenv(name); text && *text) {
        value = text;
        source = name;
        return;
      }
    }
  };
  first_set({"https_proxy", "HTTPS_PROXY"}, choice.https, choice.https_source);
  first_set({"http_proxy", "HTTP_PROXY"}, choice.http, choice.http_source);
  std::string ignored;
  first_set({"no_proxy", "NO_PROXY"}, choice.no_proxy, ignored);
  return choice;
}

Secret load_proxy_credentials(const Config& config) {
  const auto& path = config.api.proxy_credentials_file;
  if (path.empty()) return {};
  auto text = read_trimmed(path);
  if (text.empty()) fail("api.proxy_credentials_file", "file is missing, unreadable or empty");
  if (text.find('\n') != std::string::npos || text.find(':') == std::string::npos || text.front() == ':') {
    fail("api.proxy_credentials_file", "must hold one line user:password");
  }
  return Secret(text);
}

std::string redact_url(const std::string& url) {
  auto parsed = parse_conninfo(url);
  if (!parsed) return "(a connection string libpq cannot parse; not shown)";
  const auto password = option_value(parsed, "password");
  if (!password || password->empty()) return url;
  std::string result = uri_form(url) ? redact_uri(url) : redact_key_value(url);
  // Check the result with libpq itself: if it would still find a password other than
  // the placeholder, show only what libpq parsed, without the password.
  auto again = parse_conninfo(result);
  auto left = again ? option_value(again, "password") : std::optional<std::string>(*password);
  if (!again || (left && !left->empty() && *left != redacted_text) ||
      result.find(*password) != std::string::npos) {
    std::string rebuilt;
    for (auto* option = parsed.get(); option->keyword; ++option) {
      if (!option->val || std::string_view(option->keyword) == "password") continue;
      if (!rebuilt.empty()) rebuilt += ' ';
      rebuilt += std::string(option->keyword) + "=" + option->val;
    }
    return rebuilt + (rebuilt.empty() ? "" : " ") + "password=" + redacted_text;
  }
  return result;
}

std::string redact_database_error(const std::string& url, const std::string& message) {
  auto parsed = parse_conninfo(url);
  // libpq's complaint about a malformed string quotes a piece of it, which may be
  // the password: name the problem without the piece.
  if (!parsed) return "not a valid connection string (key=value pairs or a postgresql:// URI)";
  std::string result = message;
  if (auto password = option_value(parsed, "password"); password && !password->empty()) {
    for (std::size_t at; (at = result.find(*password)) != std::string::npos;) {
      result.replace(at, password->size(), redacted_text);
    }
  }
  while (!result.empty() && (result.back() == '\n' || result.back() == ' ')) result.pop_back();
  return result;
}

std::vector<std::string> keep_restart_keys(const Config& running, Config& fresh) {
  std::vector<std::string> changed;
  auto keep = [&](const char* key, auto& fresh_value, const auto& running_value) {
    if (fresh_value == running_value) return;
    changed.emplace_back(key);
    fresh_value = running_value;
  };
  // Bound once at start: the sockets, the connection pool and the API client.
  keep("database.url", fresh.database.url, running.database.url);
  keep("database.pool_size", fresh.database.pool_size, running.database.pool_size);
  keep("api.base_url", fresh.api.base_url, running.api.base_url);
  keep("api.max_connections", fresh.api.max_connections, running.api.max_connections);
  keep("api.request_timeout_ms", fresh.api.request_timeout_ms, running.api.request_timeout_ms);
  // The proxy and the trusted CAs are read once, into the API client and the downloader.
  keep("api.proxy", fresh.api.proxy, running.api.proxy);
  keep("api.proxy_credentials_file", fresh.api.proxy_credentials_file, running.api.proxy_credentials_file);
  keep("api.no_proxy", fresh.api.no_proxy, running.api.no_proxy);
  keep("api.ca_file", fresh.api.ca_file, running.api.ca_file);
  keep("api.ca_dir", fresh.api.ca_dir, running.api.ca_dir);
  keep("http.listen", fresh.http.listen, running.http.listen);
  keep("webhook.listen", fresh.webhook.listen, running.webhook.listen);
  keep("webhook.max_body_bytes", fresh.webhook.max_body_bytes, running.webhook.max_body_bytes);
  keep("webhook.read_timeout_ms", fresh.webhook.read_timeout_ms, running.webhook.read_timeout_ms);
  // The instance's name is in its leases and heartbeat row: it cannot change under them.
  keep("dispatch.instance_id", fresh.dispatch.instance_id, running.dispatch.instance_id);
  // The console's failed-login limiter is built once, with the listener it guards.
  keep("console.login_failures_per_address", fresh.console.login_failures_per_address,
       running.console.login_failures_per_address);
  keep("console.login_failures_overall", fresh.console.login_failures_overall, running.console.login_failures_overall);
  keep("console.login_failure_window_seconds", fresh.console.login_failure_window_seconds,
       running.console.login_failure_window_seconds);
  keep("console.search_scan_rows", fresh.console.search_scan_rows, running.console.search_scan_rows);
  return changed;
}

namespace {
std::vector<Secret> read_tokens(const std::string& path, const std::string& key) {
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored)) fail(key, "is a directory, not a file of tokens");
  std::ifstream file(path);
  if (!file) fail(key, "file is missing or unreadable");
  std::vector<Secret> tokens;
  std::string line;
  while (std::getline(file, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    std::size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;
    line.erase(0, start);
    // A token is one word: a space inside is a pasted line, not a token.
    if (line.find_first_of(" \t") != std::string::npos) fail(key, "a line holds more than one word");
    if (line.size() < 16) fail(key, "a token is shorter than 16 characters");
    tokens.emplace_back(line);
  }
  if (tokens.empty()) fail(key, "file holds no token");
  return tokens;
}
}  // namespace

ConsoleTokens load_console_tokens(const Config& config) {
  ConsoleTokens tokens;
  if (!config.console.operator_token_file.empty()) {
    tokens.operators = read_tokens(config.console.operator_token_file, "console.operator_token_file");
  }
  if (!config.console.viewer_token_file.empty()) {
    tokens.viewers = read_tokens(config.console.viewer_token_file, "console.viewer_token_file");
    tokens.viewers_configured = true;
  }
  return tokens;
}

}  // namespace klingq::config
