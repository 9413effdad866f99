// The generation API's wire protocol, without I/O: building the submit, status and
// credit requests (GraphQL or REST, API.md), and classifying every outcome once into
// the one error vocabulary of STYLE.md rule 5. The HTTP client carries the bytes.
#pragma once

#include "config/config.hpp"
#include "http/client.hpp"
#include "ratelimit/headers.hpp"

#include <boost/json/fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace klingq::api {

enum class OutcomeClass {
  accepted,      // the API took the job (or replayed it for our idempotency key)
  invalid_job,   // 400 / BAD_USER_INPUT / 409: the job itself is wrong, do not retry
  transient,     // 5xx, timeout, reset, malformed body: retry with backoff, same key
  rate_limited,  // 429: not the job's fault, pause the window
  no_credit,     // 402: not the job's fault, pause until the balance allows
  unauthorized,  // 401: nothing can succeed until the key is fixed
};
const char* to_string(OutcomeClass outcome);
// Only transient outcomes spend one of the job's attempts and come back by backoff.
bool is_retryable(OutcomeClass outcome);

// What klingq sends for one row of klingq.jobs.
struct JobSpec {
  std::string prompt;
  int duration = 5;
  std::string aspect_ratio = "16:9";
  std::optional<std::string> version;
  std::string mode = "standard";
  std::string options_json = "{}";  // a JSON object merged into the API's options
  std::string idempotency_key;
};

struct Endpoint {
  config::Protocol protocol = config::Protocol::graphql;
  const config::Secret* api_key = nullptr;
  std::string webhook_url;  // empty: no webhook requested
};

http::ClientRequest build_submit(const JobSpec& job, const Endpoint& endpoint);
http::ClientRequest build_status(const std::string& remote_id, const Endpoint& endpoint);
http::ClientRequest build_credits(const Endpoint& endpoint);

struct Outcome {
  OutcomeClass outcome = OutcomeClass::transient;
  unsigned http_status = 0;  // 0 when no response arrived
  std::string code;          // extensions.code, when the API gave one
  std::string message;       // the API's own words (or the transport error), for last_error
  // accepted:
  std::string remote_id;
  std::optional<std::int64_t> credit_cost;
  std::string remote_status;
  // no_credit:
  std::optional<std::int64_t> credits_available;
  // rate_limited: the window the API named (nullopt: not said)
  std::optional<ratelimit::Window> window;
};

Outcome classify_submit(const http::ClientResult& result);

struct JobStatus {
  Outcome outcome;             // accepted when the status query itself succeeded
  std::string status;          // processing | queued | pending | completed | failed | ...
  bool terminal = false;
  std::string url;
  std::string metadata_json;   // "{}" when absent
  std::string error;           // failed jobs' reason
  std::optional<std::int64_t> credit_cost;
};
JobStatus parse_status(const http::ClientResult& result);

struct Balance {
  Outcome outcome;
  std::optional<std::int64_t> balance;
};
Balance parse_balance(const http::ClientResult& result);

// A job's metadata as text for a jsonb column. Boost.JSON reads a number too large for a
// double (1e999) as infinity and writes it back as "Infinity", which jsonb refuses, so
// such numbers become null: one odd number must not keep a finished job from completing.
std::string jsonb_text(boost::json::object metadata);

// Backoff before retry number `attempt` (1-based): base·2^(attempt-1) capped at max,
// with "equal jitter" (half fixed, half random) so a 500 storm does not come back in
// lockstep. `unit_random` is in [0, 1) and injected for tests.
Duration retry_delay(int attempt, Duration base, Duration max, double unit_random);

}  // namespace klingq::api
