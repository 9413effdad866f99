// klingqd's configuration: one struct with defaults, loaded from one YAML file,
// validated with errors that name the key. config/klingq.example.yaml documents every
// key; tests/unit/config_test.cpp checks that the two agree.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace klingq::config {

// A value that must never be printed: logs and errors show "<redacted>".
class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}
  const std::string& reveal() const { return value_; }
  bool empty() const { return value_.empty(); }
  bool operator==(const Secret&) const = default;

 private:
  std::string value_;
};

enum class Protocol { graphql, rest };
enum class Plan { free, starter, pro, enterprise };

// The limits a plan starts with, before the API's headers say otherwise.
// 0 means unlimited.
struct PlanLimits {
  std::int64_t rpm;
  std::int64_t parallel;
  std::int64_t daily;
};
PlanLimits plan_limits(Plan plan);
const char* to_string(Plan plan);
const char* to_string(Protocol protocol);

struct DatabaseConfig {
  std::string url = "postgresql:///klingq";  // libpq URI or key=value string
  int pool_size = 4;                         // connections for claims and updates
};

struct ApiConfig {
  std::string base_url = "http://127.0.0.1:8080";  // scheme://host[:port][/prefix]
  Protocol protocol = Protocol::graphql;            // graphql | rest
  std::string key_file;                 // file holding the key; else env, else credential
  int request_timeout_ms = 30000;       // deadline for one HTTP exchange
  int max_connections = 64;             // keep-alive connections to the API
  bool poll_counts_against_rpm = true;  // status queries spend the request budget
  // An HTTP proxy for the API and the downloads: "http://[user:password@]host[:port]".
  // Empty: $https_proxy/$HTTPS_PROXY for https, $http_proxy/$HTTP_PROXY for http.
  std::string proxy;
  std::string proxy_credentials_file;  // "user:password" for the proxy, one line
  std::string no_proxy;  // with api.proxy: hosts reached directly (else $no_proxy/$NO_PROXY)
  std::string ca_file;   // PEM CA certificates trusted besides the system's
  std::string ca_dir;    // a directory of hashed CA certificates (c_rehash), likewise
};

struct LimitsConfig {
  Plan plan = Plan::free;
  std::optional<std::int64_t> rpm;       // overrides the plan's requests per window
  std::optional<std::int64_t> parallel;  // overrides the plan's parallel jobs
  std::optional<std::int64_t> daily;     // overrides the plan's jobs per day
  int window_seconds = 60;  // request window assumed until a Reset header says otherwise
  // limits.day_starts_at ("16:00Z", "00:00+08:00"): the provider's day begins this many
  // minutes after 00:00 UTC. Unset: learned from the API's count, else 00:00 UTC.
  std::optional<int> day_starts_at_minutes;
};

// "HH:MM" then "Z" or "+HH:MM"/"-HH:MM": the minutes after 00:00 UTC at which that
// local time falls, in [0, 1440). nullopt when malformed.
std::optional<int> parse_day_start(std::string_view text);

struct CostTable {
  std::int64_t standard_5 = 100;
  std::int64_t standard_10 = 200;
  std::int64_t professional_5 = 300;
  std::int64_t professional_10 = 500;
};

struct CreditsConfig {
  std::int64_t reserve = 0;              // never spend the balance below this
  std::int64_t low_balance_warning = 1000;
  int refresh_seconds = 300;             // periodic balance query
  int starvation_seconds = 600;  // a job skipped for cheaper ones this long stops the skipping
  CostTable cost;
};

struct DispatchConfig {
  std::string instance_id;      // default: hostname-pid
  int claim_batch = 200;        // most rows one claim takes
  int lease_seconds = 120;      // a claimed row returns to the queue after this
  int safety_poll_ms = 5000;    // claim even when no NOTIFY came
  int retry_base_ms = 2000;     // first retry delay; doubles per attempt, jittered
  int retry_max_ms = 600000;    // cap of the retry delay
  // Submits of this instance from claim to record; 0: api.max_connections + claim_batch
  // (one claim's worth of rows ready behind the requests on the wire: the fastest measured).
  int max_in_flight_requests = 0;
};

struct PollConfig {
  double share = 0.2;            // most of the request budget polls may use while submits want it
  int first_after_seconds = 5;   // the first poll until generation times are learned
  int max_interval_seconds = 600;
  int webhook_grace_seconds = 30;  // with webhooks on, poll only jobs this late past the 99 % time
  int min_interval_ms = 2000;    // never two polls of one job closer than this (the seed's 2 s)
  int horizon_seconds = 7200;    // unresolved this long: flagged as stuck
};

struct WebhookConfig {
  std::string listen;                  // host:port; empty disables the receiver
  std::string public_url;              // sent as webhookUrl on submit
  std::vector<Secret> secrets;         // any of them verifies (rotation)
  std::size_t max_body_bytes = 1048576;
  int read_timeout_ms = 10000;
};

struct HttpConfig {
  std::string listen;  // host:port for /metrics, /healthz, /readyz; empty disables
};

struct LogConfig {
  std::string level = "info";  // debug | info | notice | warning | error
  bool json = false;           // one JSON object per line instead of key=value
  bool job_events = true;      // per-job submitted/completed lines at info (else debug)
};

struct OutputsConfig {
  bool download = false;  // fetch each finished video into dir
  std::string dir;        // videos land here as <job id>.mp4
  int max_attempts = 5;   // download attempts before output_error records the failure
  std::int64_t max_bytes = std::int64_t{2} << 30;  // a larger video is refused, not stored
  int timeout_seconds = 1800;  // deadline of one download exchange, headers and body
  int concurrency = 4;         // downloads this instance runs at once
};

struct ConsoleConfig {
  // Files of tokens, one a line (blank lines and # comments skipped), read like the API
  // key file. Operator tokens may act; viewer tokens only read. With a viewer file set,
  // every read needs a token; without one, reads are open to whoever reaches http.listen.
  std::string operator_token_file;
  std::string viewer_token_file;
  // Wrong tokens (at the login form or as a bearer header) one client address may
  // present in a burst, and all addresses together; a full bucket drains in
  // login_failure_window_seconds. Beyond it token checks get 429 with Retry-After.
  int login_failures_per_address = 20;
  int login_failures_overall = 200;
  int login_failure_window_seconds = 600;
  // A prompt search of the job list reads at most this many job ids per request (about
  // 0.2 s at a million jobs), then offers to search the older ones.
  int search_scan_rows = 100000;
};

struct Config {
  DatabaseConfig database;
  ApiConfig api;
  LimitsConfig limits;
  CreditsConfig credits;
  DispatchConfig dispatch;
  PollConfig poll;
  WebhookConfig webhook;
  HttpConfig http;
  LogConfig log;
  OutputsConfig outputs;
  ConsoleConfig console;

  // The effective limits: plan defaults with the configured overrides applied.
  PlanLimits starting_limits() const;
  // Throws ConfigError naming the first bad key.
  void validate() const;
};

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Parses YAML text; unknown keys and wrong types are errors naming the key.
Config parse(const std::string& yaml_text);
// Loads a file, applies environment overrides (KLINGQ_DATABASE_URL) and validates.
Config load(const std::string& path);
// Every key the struct knows, dotted ("api.base_url"), for the documentation test.
std::vector<std::string> known_keys();

// The API key: api.key_file, else $KLINGQ_API_KEY, else $CREDENTIALS_DIRECTORY/api-key.
// $KLINGQ_API_KEY is read once per process and then unset (and wiped from
// /proc/<pid>/environ); later calls use the copy taken then.
Secret load_api_key(const Config& config);

// The console's tokens from console.operator_token_file / viewer_token_file (empty
// lists when unset). Throws ConfigError naming the key when a set file is missing,
// unreadable or holds no token; never names a token.
struct ConsoleTokens {
  std::vector<Secret> operators;
  std::vector<Secret> viewers;
  bool viewers_configured = false;  // console.viewer_token_file is set
};
ConsoleTokens load_console_tokens(const Config& config);

// Where outgoing connections go: api.proxy (and api.no_proxy) for every scheme when it
// is set, else the conventional environment, lower-case names first as curl reads them.
// An empty URL means direct. `*_source` names where each came from, for messages.
struct ProxyChoice {
  std::string https;
  std::string https_source;  // "api.proxy", "https_proxy" or "HTTPS_PROXY"
  std::string http;
  std::string http_source;   // "api.proxy", "http_proxy" or "HTTP_PROXY"
  std::string no_proxy;
};
ProxyChoice proxy_choice(const Config& config);

// api.proxy_credentials_file's "user:password" (empty Secret when the key is unset).
// Throws ConfigError naming the key when the file is missing, empty or has no colon.
Secret load_proxy_credentials(const Config& config);

// A database URL (libpq URI or key=value string) with any password replaced, for logs.
// Parsed as libpq parses it (PQconninfoParse), never by pattern: a string libpq refuses
// is not shown at all.
std::string redact_url(const std::string& url);
// Whether libpq accepts the string (PQconninfoParse); a URL is not checked further.
bool valid_connection_string(const std::string& url);
// libpq's reason for a failed connection to url, with url's password taken out of it.
std::string redact_database_error(const std::string& url, const std::string& message);

// The keys a SIGHUP cannot apply to a running klingqd (listeners, the pool, the API
// client): those that differ between running and fresh, dotted. Their running values are
// copied into fresh, so that what the engine gets is what it actually runs with.
std::vector<std::string> keep_restart_keys(const Config& running, Config& fresh);

}  // namespace klingq::config
