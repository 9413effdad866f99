// The generation API's wire protocol, without I/O: building the submit, status and
// credit requests (GraphQL or REST, API.md), and classifying every outcome once into
// the one error vocabulary of STYLE.md rule 5. The HTTP client carries the bytes.
#pragma once

#include "api/outcome.hpp"
#include "config/config.hpp"
#include "http/client.hpp"
#include "ratelimit/headers.hpp"

#include <boost/json/fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace klingq::api {

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

}  // namespace klingq::api
