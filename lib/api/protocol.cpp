#include "api/protocol.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>

namespace klingq::api {
namespace json = boost::json;
namespace {

constexpr const char* generate_mutation =
    "mutation Generate($input: GenerateInput!) { generate(input: $input) "
    "{ id status type provider url metadata creditCost createdAt } }";
constexpr const char* job_query =
    "query Job($id: ID!) { job(id: $id) { id status url metadata creditCost error } }";
constexpr const char* credits_query = "query Credits { credits { balance } }";

void add_auth(http::ClientRequest& request, const Endpoint& endpoint) {
  if (!endpoint.api_key) return;
  if (endpoint.protocol == config::Protocol::graphql) {
    request.headers.emplace_back("Authorization", "Bearer " + endpoint.api_key->reveal());
  } else {
    request.headers.emplace_back("X-API-Key", endpoint.api_key->reveal());
  }
}

http::ClientRequest graphql(const std::string& query, const char* operation,
                            json::object variables, const Endpoint& endpoint) {
  http::ClientRequest request;
  request.method = boost::beast::http::verb::post;
  request.target = "/graphql";
  request.headers.emplace_back("Content-Type", "application/json");
  add_auth(request, endpoint);
  json::object body{{"query", query}, {"variables", std::move(variables)}};
  if (operation) body["operationName"] = operation;
  request.body = json::serialize(body);
  return request;
}

json::object job_options(const JobSpec& job) {
  json::object options;
  // The row's free-form options go first so the validated columns win over them.
  if (auto parsed = json::parse(job.options_json); parsed.is_object()) options = parsed.as_object();
  options["duration"] = job.duration;
  options["aspectRatio"] = job.aspect_ratio;
  if (job.version) options["version"] = *job.version;
  options["quality"] = job.mode == "professional" ? "high" : "standard";
  return options;
}

std::optional<std::int64_t> as_int(const json::value* value) {
  if (!value) return std::nullopt;
  if (value->is_int64()) return value->as_int64();
  if (value->is_uint64()) return static_cast<std::int64_t>(value->as_uint64());
  if (value->is_double()) return static_cast<std::int64_t>(std::llround(value->as_double()));
  if (value->is_string()) {
    try {
      return std::stoll(std::string(value->as_string()));
    } catch (...) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::string as_text(const json::value* value) {
  if (!value || value->is_null()) return {};
  if (value->is_string()) return std::string(value->as_string());
  return json::serialize(*value);
}

// The payload object of a success: data's single field (the page calls it generate in
// the mutation, generatevideo in its samples, job/credits for queries), or, for REST
// bodies without a data envelope, the body itself.
const json::object* payload(const json::value& body) {
  if (!body.is_object()) return nullptr;
  const auto& root = body.as_object();
  if (auto data = root.if_contains("data"); data && data->is_object()) {
    const auto& fields = data->as_object();
    for (const auto& field : fields) {
      if (field.value().is_object()) return &field.value().as_object();
    }
    return nullptr;
  }
  if (root.contains("errors")) return nullptr;
  return &root;
}

OutcomeClass class_of_status(unsigned status) {
  // 407: a proxy between us and the API wants (other) credentials. Like a refused key,
  // nothing can succeed until the config changes, and it is not the job's fault.
  if (status == 401 || status == 403 || status == 407) return OutcomeClass::unauthorized;
  if (status == 402) return OutcomeClass::no_credit;
  if (status == 429) return OutcomeClass::rate_limited;
  if (status >= 500 || status == 408) return OutcomeClass::transient;
  if (status >= 400) return OutcomeClass::invalid_job;
  return OutcomeClass::transient;  // a 1xx/3xx or a 2xx we could not read
}

std::optional<OutcomeClass> class_of_code(std::string_view code) {
  if (code == "INSUFFICIENT_CREDITS") return OutcomeClass::no_credit;
  if (code == "RATE_LIMITED" || code == "TOO_MANY_REQUESTS") return OutcomeClass::rate_limited;
  if (code == "UNAUTHENTICATED" || code == "FORBIDDEN") return OutcomeClass::unauthorized;
  if (code == "BAD_USER_INPUT" || code == "GRAPHQL_VALIDATION_FAILED" || code == "CONFLICT")
    return OutcomeClass::invalid_job;
  if (code == "INTERNAL_SERVER_ERROR" || code == "SERVICE_UNAVAILABLE") return OutcomeClass::transient;
  return std::nullopt;
}

std::optional<ratelimit::Window> window_named(std::string_view text) {
  auto has = [&](std::string_view word) {
    std::string lower(text);
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    return lower.find(word) != std::string::npos;
  };
  if (has("parallel") || has("concurren")) return ratelimit::Window::parallel;
  if (has("daily") || has("per day") || has("day")) return ratelimit::Window::daily;
  if (has("rpm") || has("minute") || has("request")) return ratelimit::Window::rpm;
  return std::nullopt;
}

// The response body as JSON (null when there is none or it does not parse).
json::value parse_body(const http::ClientResult& result, bool& readable) {
  readable = false;
  if (result.error) return {};
  json::error_code ec;
  auto body = json::parse(result.response.body, ec);
  readable = !ec;
  return ec ? json::value() : body;
}

void replace_non_finite(json::value& value) {
  if (value.is_double() && !std::isfinite(value.get_double())) {
    value = nullptr;
  } else if (value.is_array()) {
    for (auto& item : value.get_array()) replace_non_finite(item);
  } else if (value.is_object()) {
    for (auto& item : value.get_object()) replace_non_finite(item.value());
  }
}

// Classifies a response: extensions.code first, then the HTTP status (API.md).
Outcome read_outcome(const http::ClientResult& result, const json::value& body, bool readable) {
  Outcome outcome;
  if (result.error) {
    if (http::is_proxy_auth_required(result.error)) {
      // The CONNECT tunnel was refused with a 407: no request reached the API.
      outcome.outcome = OutcomeClass::unauthorized;
      outcome.http_status = 407;
      outcome.message = result.error_detail.empty() ? result.error.message() : result.error_detail;
      return outcome;
    }
    outcome.outcome = OutcomeClass::transient;
    outcome.message = "transport: " + result.error.message();
    if (!result.error_detail.empty()) outcome.message += " (" + result.error_detail + ")";
    return outcome;
  }
  const auto& response = result.response;
  outcome.http_status = response.status;
  if (!readable) {
    outcome.outcome = class_of_status(response.status);
    outcome.message = response.status == 407 ? "HTTP 407 from the proxy (Proxy Authentication Required)"
                                             : "unreadable response body (HTTP " + std::to_string(response.status) + ")";
    return outcome;
  }
  if (body.is_object()) {
    if (auto errors = body.as_object().if_contains("errors");
        errors && errors->is_array() && !errors->as_array().empty()) {
      const auto& first = errors->as_array().front();
      std::optional<OutcomeClass> by_code;
      if (first.is_object()) {
        const auto& error = first.as_object();
        outcome.message = as_text(error.if_contains("message"));
        if (auto ext = error.if_contains("extensions"); ext && ext->is_object()) {
          const auto& extensions = ext->as_object();
          outcome.code = as_text(extensions.if_contains("code"));
          by_code = class_of_code(outcome.code);
          outcome.credits_available = as_int(extensions.if_contains("creditsAvailable"));
          if (auto w = extensions.if_contains("window"); w && w->is_string()) {
            outcome.window = window_named(w->as_string());
          }
        }
      }
      outcome.outcome = by_code ? *by_code
                        : response.status >= 200 && response.status < 300
                            ? OutcomeClass::transient
                            : class_of_status(response.status);
      if (outcome.outcome == OutcomeClass::rate_limited && !outcome.window) {
        outcome.window = window_named(outcome.message);
      }
      return outcome;
    }
  }
  if (response.status < 200 || response.status >= 300) {
    outcome.outcome = class_of_status(response.status);
    outcome.message = response.status == 407 ? "HTTP 407 from the proxy (Proxy Authentication Required)"
                                             : "HTTP " + std::to_string(response.status);
    return outcome;
  }
  if (!payload(body)) {
    outcome.outcome = OutcomeClass::transient;
    outcome.message = "response has no data";
    return outcome;
  }
  outcome.outcome = OutcomeClass::accepted;
  return outcome;
}

}  // namespace

const char* to_string(OutcomeClass outcome) {
  switch (outcome) {
    case OutcomeClass::accepted: return "accepted";
    case OutcomeClass::invalid_job: return "invalid_job";
    case OutcomeClass::transient: return "transient";
    case OutcomeClass::rate_limited: return "rate_limited";
    case OutcomeClass::no_credit: return "no_credit";
    case OutcomeClass::unauthorized: return "unauthorized";
  }
  return "transient";
}

bool is_retryable(OutcomeClass outcome) { return outcome == OutcomeClass::transient; }

std::string jsonb_text(json::object metadata) {
  for (auto& item : metadata) replace_non_finite(item.value());
  return json::serialize(metadata);
}

http::ClientRequest build_submit(const JobSpec& job, const Endpoint& endpoint) {
  http::ClientRequest request;
  if (endpoint.protocol == config::Protocol::graphql) {
    json::object input{{"type", "VIDEO"},
                       {"provider", "kling"},
                       {"input", json::object{{"text", job.prompt}}},
                       {"options", job_options(job)}};
    if (!endpoint.webhook_url.empty()) input["webhookUrl"] = endpoint.webhook_url;
    request = graphql(generate_mutation, "Generate", json::object{{"input", std::move(input)}},
                      endpoint);
  } else {
    request.method = boost::beast::http::verb::post;
    request.target = "/v1/text_to_video";
    request.headers.emplace_back("Content-Type", "application/json");
    add_auth(request, endpoint);
    json::object body = job_options(job);
    body["service"] = "kling";
    body["prompt"] = job.prompt;
    if (!endpoint.webhook_url.empty()) body["webhookUrl"] = endpoint.webhook_url;
    request.body = json::serialize(body);
  }
  request.headers.emplace_back("Idempotency-Key", job.idempotency_key);
  return request;
}

http::ClientRequest build_status(const std::string& remote_id, const Endpoint& endpoint) {
  if (endpoint.protocol == config::Protocol::graphql) {
    return graphql(job_query, "Job", json::object{{"id", remote_id}}, endpoint);
  }
  http::ClientRequest request;
  request.method = boost::beast::http::verb::get;
  std::string escaped;
  for (unsigned char c : remote_id) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      escaped += static_cast<char>(c);
    } else {
      static constexpr char hex[] = "0123456789ABCDEF";
      escaped += '%';
      escaped += hex[c >> 4];
      escaped += hex[c & 15];
    }
  }
  request.target = "/v1/jobs/" + escaped;
  add_auth(request, endpoint);
  return request;
}

http::ClientRequest build_credits(const Endpoint& endpoint) {
  if (endpoint.protocol == config::Protocol::graphql) {
    return graphql(credits_query, "Credits", json::object{}, endpoint);
  }
  http::ClientRequest request;
  request.method = boost::beast::http::verb::get;
  request.target = "/v1/credits";
  add_auth(request, endpoint);
  return request;
}

Outcome classify_submit(const http::ClientResult& result) {
  bool readable = false;
  auto body = parse_body(result, readable);
  auto outcome = read_outcome(result, body, readable);
  if (outcome.outcome != OutcomeClass::accepted) return outcome;
  const json::object* job = payload(body);
  outcome.remote_id = job ? as_text(job->if_contains("id")) : "";
  if (outcome.remote_id.empty()) {
    outcome.outcome = OutcomeClass::transient;
    outcome.message = "accepted response without a job id";
    return outcome;
  }
  outcome.credit_cost = as_int(job->if_contains("creditCost"));
  outcome.remote_status = as_text(job->if_contains("status"));
  return outcome;
}

JobStatus parse_status(const http::ClientResult& result) {
  JobStatus status;
  bool readable = false;
  auto body = parse_body(result, readable);
  status.outcome = read_outcome(result, body, readable);
  status.metadata_json = "{}";
  if (status.outcome.outcome != OutcomeClass::accepted) return status;
  const json::object* job = payload(body);
  if (!job) {
    status.outcome.outcome = OutcomeClass::transient;
    return status;
  }
  status.status = as_text(job->if_contains("status"));
  status.terminal = status.status == "completed" || status.status == "failed";
  status.url = as_text(job->if_contains("url"));
  status.error = as_text(job->if_contains("error"));
  status.credit_cost = as_int(job->if_contains("creditCost"));
  json::object metadata;
  if (auto m = job->if_contains("metadata"); m && m->is_object()) metadata = m->as_object();
  if (auto d = job->if_contains("duration"); d && !metadata.contains("duration")) metadata["duration"] = *d;
  status.metadata_json = jsonb_text(std::move(metadata));
  return status;
}

Balance parse_balance(const http::ClientResult& result) {
  Balance balance;
  bool readable = false;
  auto body = parse_body(result, readable);
  balance.outcome = read_outcome(result, body, readable);
  if (balance.outcome.outcome != OutcomeClass::accepted) return balance;
  const json::object* object = payload(body);
  if (object) balance.balance = as_int(object->if_contains("balance"));
  if (!balance.balance) {
    balance.outcome.outcome = OutcomeClass::transient;
    balance.outcome.message = "credits response without a balance";
  }
  return balance;
}

Duration retry_delay(int attempt, Duration base, Duration max, double unit_random) {
  const int doublings = std::clamp(attempt - 1, 0, 30);
  auto raw = std::chrono::duration<double>(base) * std::pow(2.0, doublings);
  auto capped = std::min(raw, std::chrono::duration<double>(max));
  auto jittered = capped * (0.5 + 0.5 * std::clamp(unit_random, 0.0, 1.0));
  return std::chrono::duration_cast<Duration>(jittered);
}

}  // namespace klingq::api
