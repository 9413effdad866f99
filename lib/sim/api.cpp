// The simulator's API surface: see api.hpp. Formats follow ../shared/API.md and the
// seed's samples: the mutation answers {"data":{"generate":{...}}} (or the field's
// alias), REST answers {"data":{"generatevideo":{...}}}, errors are
// {"errors":[{"message":..., "extensions":{"code":..., ...}}]}.
#include "sim/api.hpp"

#include "sim/signature.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace klingq::sim {
namespace json = boost::json;

namespace {

constexpr std::size_t max_idempotency_key_length = 255;

// The fields of the Job type (generate's and job's result) and of Credits.
constexpr std::array<std::string_view, 13> job_fields{
    "id",       "status",     "type",     "provider", "service", "url",  "webhookUrl",
    "createdAt", "completedAt", "duration", "metadata", "creditCost", "error"};
constexpr std::array<std::string_view, 1> credits_fields{"balance"};

std::string error_body(std::string_view code, std::string_view message,
                       const json::object& extensions = {}) {
  json::object ext;
  ext["code"] = code;
  for (const auto& kv : extensions) ext[kv.key()] = kv.value();
  json::object error;
  error["message"] = message;
  error["extensions"] = std::move(ext);
  json::array errors;
  errors.push_back(std::move(error));
  json::object body;
  body["errors"] = std::move(errors);
  return json::serialize(body);
}

ApiReply simple_error(unsigned status, std::string_view code, std::string_view message,
                      const json::object& extensions = {}) {
  ApiReply reply;
  reply.status = status;
  reply.body = error_body(code, message, extensions);
  return reply;
}

ApiReply json_reply(const json::value& value, unsigned status = 200) {
  ApiReply reply;
  reply.status = status;
  reply.body = json::serialize(value);
  return reply;
}

ApiReply bad_input(Stats& stats, const InvalidParameter& invalid) {
  ++stats.bad_request;
  json::object ext;
  ext["parameter"] = invalid.parameter;
  return simple_error(400, "BAD_USER_INPUT", invalid.message, ext);
}

ApiReply graphql_error(Stats& stats, std::string_view code, std::string_view message) {
  ++stats.bad_request;
  return simple_error(400, code, message);
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// Compares in time independent of where the first difference is.
bool same_secret(std::string_view given, const std::string& expected) {
  if (given.size() != expected.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < given.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ expected[i]);
  return diff == 0;
}

json::value optional_string(const std::string& s) { return s.empty() ? json::value() : json::value(s); }

json::object job_json(const Job& job) {
  json::object o;
  o["id"] = job.id;
  o["status"] = to_string(job.status);
  o["type"] = "VIDEO";
  o["provider"] = "kling";
  o["service"] = "kling";
  o["url"] = optional_string(job.url);
  o["webhookUrl"] = optional_string(job.params.webhook_url);
  o["createdAt"] = format_iso8601(job.created_at);
  o["completedAt"] = job.completed_at ? json::value(format_iso8601(*job.completed_at)) : json::value();
  o["duration"] = job.params.duration;
  if (job.status == JobStatus::completed) {
    o["metadata"] = json::object{{"duration", job.params.duration}, {"width", 1920}, {"height", 1080}};
  } else {
    o["metadata"] = nullptr;
  }
  o["creditCost"] = job.credit_cost;
  o["error"] = optional_string(job.error);
  return o;
}

// The webhook payload of API.md; a failed job carries its error instead of a URL.
json::object webhook_json(const Job& job) {
  json::object o;
  o["id"] = job.id;
  o["status"] = to_string(job.status);
  o["url"] = optional_string(job.url);
  o["service"] = "kling";
  o["createdAt"] = format_iso8601(job.created_at);
  o["completedAt"] = job.completed_at ? json::value(format_iso8601(*job.completed_at)) : json::value();
  if (job.status == JobStatus::completed) {
    o["metadata"] = json::object{{"duration", job.params.duration}, {"width", 1920}, {"height", 1080}};
  } else {
    o["error"] = job.error;
    o["creditCost"] = job.credit_cost;
  }
  return o;
}

template <std::size_t N>
std::optional<std::string> check_selection(const std::vector<graphql::Field>& selection,
                                           const std::array<std::string_view, N>& known,
                                           std::string_view type_name) {
  for (const auto& f : selection) {
    if (f.name == "__typename") continue;
    if (std::find(known.begin(), known.end(), f.name) == known.end()) {
      return "Cannot query field \"" + f.name + "\" on type \"" + std::string(type_name) + "\".";
    }
    if (!f.selection.empty()) {
      return "Field \"" + f.name + "\" must not have a selection since its type has no subfields.";
    }
  }
  return std::nullopt;
}

// The object restricted to the selected fields, under their aliases; all of it when
// nothing is selected (lenient: a strict server would refuse that query).
json::object project(const json::object& full, const std::vector<graphql::Field>& selection,
                     std::string_view type_name) {
  if (selection.empty()) return full;
  json::object out;
  for (const auto& f : selection) {
    if (f.name == "__typename") {
      out[f.alias] = type_name;
    } else if (auto* v = full.if_contains(f.name)) {
      out[f.alias] = *v;
    }
  }
  return out;
}

std::optional<std::string> check_arguments(const graphql::Field& field,
                                           std::initializer_list<std::string_view> allowed,
                                           std::string_view parent) {
  for (const auto& kv : field.arguments) {
    if (std::find(allowed.begin(), allowed.end(), kv.key()) == allowed.end()) {
      return "Unknown argument \"" + std::string(kv.key()) + "\" on field \"" + std::string(parent) +
             "." + field.name + "\".";
    }
  }
  return std::nullopt;
}

json::object data(const std::string& key, json::value value) {
  json::object d;
  d[key] = std::move(value);
  return json::object{{"data", std::move(d)}};
}

json::value limit_json(const std::optional<std::int64_t>& v) { return v ? json::value(*v) : json::value(); }

json::object config_json(const Account& account) {
  const auto& s = account.settings();
  auto limits = s.limits();
  json::object o;
  o["plan"] = to_string(s.plan);
  o["rpm"] = limit_json(s.rpm);
  o["parallel"] = limit_json(s.parallel);
  o["daily"] = limit_json(s.daily);
  o["limits"] = json::object{{"rpm", limits.rpm}, {"parallel", limits.parallel}, {"daily", limits.daily}};
  o["credits"] = account.balance();
  o["window_seconds"] = s.window_seconds;
  o["day_start_seconds"] = s.day_start_seconds;
  o["reset_day_header"] = s.reset_day_header;
  o["gen_min_seconds"] = s.gen_min_seconds;
  o["gen_max_seconds"] = s.gen_max_seconds;
  o["fail_rate"] = s.fail_rate;
  o["fault_500"] = s.faults.server_error;
  o["fault_503"] = s.faults.unavailable;
  o["fault_slow"] = s.faults.slow;
  o["slow_ms"] = s.faults.slow_ms;
  o["fault_reset_before"] = s.faults.reset_before;
  o["fault_reset_after"] = s.faults.reset_after;
  o["fault_malformed"] = s.faults.malformed;
  o["fault_429_bare"] = s.faults.bare_429;
  o["webhook_drop"] = s.webhook_faults.drop;
  o["webhook_duplicate"] = s.webhook_faults.duplicate;
  o["webhook_delay"] = s.webhook_faults.delay;
  o["webhook_delay_ms"] = s.webhook_faults.delay_ms;
  o["webhook_reorder"] = s.webhook_faults.reorder;
  o["output_bytes"] = s.outputs.bytes;
  o["output_fault_500"] = s.outputs.server_error;
  o["output_fault_truncate"] = s.outputs.truncate;
  o["output_redirects"] = s.outputs.redirects;
  o["seed"] = s.seed;
  return o;
}

// Applies a /_sim/config body to a copy of the settings. Throws std::invalid_argument
// naming the key. `balance` is set when the body carries "credits".
Settings apply_config(Settings s, const json::object& body, std::optional<std::int64_t>& balance) {
  auto number = [](const json::value& v, std::string_view key) -> double {
    if (!v.is_number()) throw std::invalid_argument(std::string(key) + " must be a number");
    return v.to_number<double>();
  };
  auto integer = [](const json::value& v, std::string_view key) -> std::int64_t {
    if (v.is_int64()) return v.get_int64();
    if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
      return static_cast<std::int64_t>(v.get_uint64());
    }
    throw std::invalid_argument(std::string(key) + " must be an integer");
  };
  // The plan first: changing it drops the limit overrides the same body does not repeat.
  if (auto* plan = body.if_contains("plan")) {
    auto parsed = plan->is_string() ? parse_plan(plan->get_string()) : std::nullopt;
    if (!parsed) throw std::invalid_argument("plan must be free, starter, pro or enterprise");
    s.plan = *parsed;
    s.rpm.reset();
    s.parallel.reset();
    s.daily.reset();
  }
  for (const auto& kv : body) {
    auto key = kv.key();
    const auto& v = kv.value();
    auto limit = [&](std::optional<std::int64_t>& out) {
      if (v.is_null()) {
        out.reset();
      } else {
        out = integer(v, key);
      }
    };
    if (key == "plan") continue;
    if (key == "rpm") limit(s.rpm);
    else if (key == "parallel") limit(s.parallel);
    else if (key == "daily") limit(s.daily);
    else if (key == "credits") balance = integer(v, key);
    else if (key == "window_seconds") s.window_seconds = number(v, key);
    else if (key == "gen_min_seconds") s.gen_min_seconds = number(v, key);
    else if (key == "gen_max_seconds") s.gen_max_seconds = number(v, key);
    else if (key == "fail_rate") s.fail_rate = number(v, key);
    else if (key == "fault_500") s.faults.server_error = number(v, key);
    else if (key == "fault_503") s.faults.unavailable = number(v, key);
    else if (key == "fault_slow") s.faults.slow = number(v, key);
    else if (key == "slow_ms") s.faults.slow_ms = static_cast<int>(integer(v, key));
    else if (key == "fault_reset_before") s.faults.reset_before = number(v, key);
    else if (key == "fault_reset_after") s.faults.reset_after = number(v, key);
    else if (key == "fault_malformed") s.faults.malformed = number(v, key);
    else if (key == "fault_429_bare") s.faults.bare_429 = number(v, key);
    else if (key == "webhook_drop") s.webhook_faults.drop = number(v, key);
    else if (key == "webhook_duplicate") s.webhook_faults.duplicate = number(v, key);
    else if (key == "webhook_delay") s.webhook_faults.delay = number(v, key);
    else if (key == "webhook_delay_ms") s.webhook_faults.delay_ms = static_cast<int>(integer(v, key));
    else if (key == "webhook_reorder") s.webhook_faults.reorder = number(v, key);
    else if (key == "output_bytes") s.outputs.bytes = integer(v, key);
    else if (key == "output_fault_500") s.outputs.server_error = number(v, key);
    else if (key == "output_fault_truncate") s.outputs.truncate = number(v, key);
    else if (key == "output_redirects") s.outputs.redirects = static_cast<int>(std::clamp<std::int64_t>(integer(v, key), -1, 1000));
    else throw std::invalid_argument("unknown key \"" + std::string(key) + "\"");
  }
  if (balance && *balance < 0) throw std::invalid_argument("credits must be >= 0");
  s.validate();
  return s;
}

json::object stats_json(Account& account, const TimeScale& scale, TimePoint now) {
  const auto& st = account.stats();
  json::object o;
  o["requests"] = st.requests;
  o["accepted"] = st.accepted;
  o["rate_limited"] = json::object{{"rpm", st.rate_limited_rpm},
                                   {"parallel", st.rate_limited_parallel},
                                   {"daily", st.rate_limited_daily},
                                   {"total", st.rate_limited_rpm + st.rate_limited_parallel + st.rate_limited_daily}};
  o["payment_required"] = st.payment_required;
  o["unauthorized"] = st.unauthorized;
  o["bad_request"] = st.bad_request;
  o["not_found"] = st.not_found;
  o["conflicts"] = st.conflicts;
  o["server_errors"] = st.server_errors;
  o["duplicate_charges"] = st.duplicate_charges;
  o["idempotent_replays"] = st.idempotent_replays;
  o["max_parallel_seen"] = st.max_parallel_seen;
  o["max_window_requests_seen"] = st.max_window_requests_seen;
  o["credits_balance"] = account.balance();
  o["credits_spent"] = st.credits_spent;
  o["credits_refunded"] = st.credits_refunded;
  auto processing = account.jobs_with(JobStatus::processing);
  auto completed = account.jobs_with(JobStatus::completed);
  auto failed = account.jobs_with(JobStatus::failed);
  o["jobs"] = json::object{{"processing", processing},
                           {"completed", completed},
                           {"failed", failed},
                           {"total", processing + completed + failed}};
  o["accepted_keys"] = account.accepted_keys();
  json::object faults;
  for (auto f : {Fault::server_error, Fault::bad_gateway, Fault::unavailable, Fault::slow, Fault::reset_before,
                 Fault::reset_after, Fault::malformed, Fault::bare_429}) {
    auto found = st.faults.find(to_string(f));
    faults[to_string(f)] = found == st.faults.end() ? 0 : found->second;
  }
  o["faults"] = std::move(faults);
  o["webhooks"] = json::object{{"attempts", st.webhooks_attempts},   {"delivered", st.webhooks_delivered},
                               {"failed", st.webhooks_failed},       {"dropped", st.webhooks_dropped},
                               {"duplicated", st.webhooks_duplicated}, {"delayed", st.webhooks_delayed},
                               {"reordered", st.webhooks_reordered}};
  o["outputs"] = json::object{{"requests", st.output_requests},
                              {"served", st.outputs_served},
                              {"truncated", st.outputs_truncated},
                              {"server_errors", st.output_server_errors},
                              {"not_found", st.output_not_found},
                              {"redirects", st.output_redirects}};
  auto usage = account.usage(now);
  o["window"] = json::object{{"limit", usage.limits.rpm},
                             {"used", usage.window_used},
                             {"reset_ms", epoch_ms(scale.to_real(usage.window_reset))}};
  o["day"] = json::object{{"limit", usage.limits.daily},
                          {"used", usage.day_used},
                          {"reset_ms", epoch_ms(scale.to_real(usage.day_reset))}};
  o["parallel"] = json::object{{"limit", usage.limits.parallel}, {"used", usage.processing}};
  o["sim_time"] = format_iso8601(now);
  o["sim_time_ms"] = epoch_ms(now);
  o["time_scale"] = scale.scale();
  return o;
}

json::object jobs_json(const Account& account) {
  json::array jobs;
  for (const auto& id : account.job_order()) {
    const Job* job = account.find_job(id);
    if (!job) continue;
    jobs.push_back(json::object{{"id", job->id},
                                {"idempotencyKey", optional_string(job->idempotency_key)},
                                {"status", to_string(job->status)},
                                {"creditCost", job->credit_cost},
                                {"createdAt", format_iso8601(job->created_at)},
                                {"completedAt", job->completed_at ? json::value(format_iso8601(*job->completed_at))
                                                                  : json::value()},
                                // Millisecond precision for latency measurements (simulated clock).
                                {"completedAtMs", job->completed_at
                                                      ? json::value(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                                        job->completed_at->time_since_epoch()).count())
                                                      : json::value()},
                                {"prompt", job->params.prompt},
                                {"webhookUrl", optional_string(job->params.webhook_url)},
                                {"error", optional_string(job->error)}});
  }
  return json::object{{"jobs", std::move(jobs)}};
}

}  // namespace

std::string ApiReply::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return "";
}

Api::Api(Settings settings, Secret api_key, Secret webhook_secret, double time_scale,
         TimePoint real_start, std::optional<TimePoint> clock_start)
    : initial_settings_(settings),
      api_key_(std::move(api_key)),
      webhook_secret_(std::move(webhook_secret)),
      scale_(real_start, clock_start.value_or(real_start), time_scale),
      account_(std::move(settings), clock_start.value_or(real_start)) {}

ApiReply Api::handle(const ApiRequest& request, TimePoint real_now) {
  auto now = scale_.to_sim(real_now);
  auto path = request.target.substr(0, request.target.find('?'));
  if (path.starts_with("/_sim/")) return handle_control(request, path, now);
  if (path.starts_with("/outputs/")) return handle_output(request, path, now);
  if (path == "/graphql" || path == "/v1/text_to_video" || path == "/v1/credits" ||
      path.starts_with("/v1/jobs/")) {
    return handle_api(request, path, real_now, now);
  }
  return simple_error(404, "NOT_FOUND", "No such endpoint: " + std::string(path));
}

ApiReply Api::handle_api(const ApiRequest& request, std::string_view path, TimePoint real_now, TimePoint now) {
  auto& stats = account_.stats();
  ++stats.requests;
  account_.advance(now);
  auto fault = account_.draw_fault();
  ApiReply reply;
  switch (fault) {
    case Fault::reset_before:
      reply.close_without_response = true;
      return reply;
    case Fault::bare_429:
      // What a front proxy's own limiter might send: no window, no headers at all.
      return simple_error(429, "RATE_LIMITED", "Too Many Requests");
    case Fault::server_error:
      ++stats.server_errors;
      reply = simple_error(500, "INTERNAL_SERVER_ERROR", "Internal server error");
      break;
    case Fault::bad_gateway:
      ++stats.server_errors;
      // A proxy's page, not JSON: clients must not depend on an error body parsing.
      reply.status = 502;
      reply.content_type = "text/html";
      reply.body = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>\n";
      break;
    case Fault::unavailable:
      ++stats.server_errors;
      reply = simple_error(503, "SERVICE_UNAVAILABLE", "Service temporarily unavailable");
      break;
    default: reply = dispatch(request, path, real_now, now); break;
  }
  add_rate_headers(reply, now);
  if (fault == Fault::reset_after) {
    reply.close_without_response = true;
  } else if (fault == Fault::malformed) {
    // The response as it was going to be, cut in half: never valid JSON.
    reply.status = 200;
    reply.content_type = "application/json";
    reply.body = reply.body.size() > 2 ? reply.body.substr(0, reply.body.size() / 2) : "{";
  } else if (fault == Fault::slow) {
    reply.delay = std::chrono::milliseconds(account_.settings().faults.slow_ms);
  }
  return reply;
}

ApiReply Api::dispatch(const ApiRequest& request, std::string_view path, TimePoint real_now, TimePoint now) {
  auto& stats = account_.stats();
  const bool is_graphql = path == "/graphql";
  const bool is_submit = path == "/v1/text_to_video";
  const char* allowed = (is_graphql || is_submit) ? "POST" : "GET";
  if (request.method != allowed) {
    ++stats.bad_request;
    auto reply = simple_error(405, "METHOD_NOT_ALLOWED",
                              std::string(path) + " accepts " + allowed + " only");
    reply.headers.emplace_back("Allow", allowed);
    return reply;
  }

  // Authentication: GraphQL takes "Authorization: Bearer KEY", REST "X-API-Key: KEY".
  std::string_view given;
  bool present = false;
  if (is_graphql) {
    auto auth = request.authorization;
    present = !auth.empty();
    if (auth.size() > 7 && iequals(auth.substr(0, 7), "Bearer ")) given = auth.substr(7);
  } else {
    present = !request.api_key.empty();
    given = request.api_key;
  }
  if (!same_secret(given, api_key_.reveal()) || api_key_.empty()) {
    ++stats.unauthorized;
    return simple_error(401, "UNAUTHENTICATED",
                        !present ? (is_graphql ? "Missing API key: send \"Authorization: Bearer YOUR_API_KEY\""
                                               : "Missing API key: send \"X-API-Key: YOUR_API_KEY\"")
                                 : "Invalid API key");
  }

  if (auto refused = account_.admit_request(now)) return error_reply(*refused, real_now);

  if (is_graphql) return graphql(request, real_now, now);
  if (is_submit) {
    json::error_code ec;
    auto body = json::parse(request.body, ec);
    if (ec) return bad_input(stats, {"body", "The request body is not valid JSON"});
    auto parsed = parse_rest_body(body);
    if (auto* invalid = std::get_if<InvalidParameter>(&parsed)) return bad_input(stats, *invalid);
    return submit(request, std::get<GenerateParams>(std::move(parsed)), real_now, now, "generatevideo", {});
  }
  if (path == "/v1/credits") return json_reply(json::object{{"balance", account_.balance()}});
  auto id = std::string(path.substr(std::string_view("/v1/jobs/").size()));
  const Job* job = account_.find_job(id);
  if (!job) {
    ++stats.not_found;
    return simple_error(404, "NOT_FOUND", "No job with id \"" + id + "\"");
  }
  return json_reply(data("generatevideo", job_json(*job)));
}

ApiReply Api::graphql(const ApiRequest& request, TimePoint real_now, TimePoint now) {
  auto& stats = account_.stats();
  json::error_code ec;
  auto body = json::parse(request.body, ec);
  if (ec || !body.is_object()) {
    return graphql_error(stats, "BAD_USER_INPUT", "The request body must be a JSON object {\"query\", \"variables\"}");
  }
  const auto& request_object = body.get_object();
  auto* query = request_object.if_contains("query");
  if (!query || !query->is_string()) {
    return graphql_error(stats, "BAD_USER_INPUT", "The request body must contain a \"query\" string");
  }
  json::object variables;
  if (auto* v = request_object.if_contains("variables"); v && !v->is_null()) {
    if (!v->is_object()) return graphql_error(stats, "BAD_USER_INPUT", "\"variables\" must be an object");
    variables = v->get_object();
  }
  std::string operation_name;
  if (auto* n = request_object.if_contains("operationName"); n && !n->is_null()) {
    if (!n->is_string()) return graphql_error(stats, "BAD_USER_INPUT", "\"operationName\" must be a string");
    operation_name = std::string(n->get_string());
  }
  auto parsed = graphql::parse(query->get_string(), variables, operation_name);
  if (auto* e = std::get_if<graphql::Error>(&parsed)) {
    bool syntax = e->message.starts_with("Syntax Error");
    return graphql_error(stats, syntax ? "GRAPHQL_PARSE_FAILED" : "GRAPHQL_VALIDATION_FAILED", e->message);
  }
  const auto& operation = std::get<graphql::Operation>(parsed);
  if (operation.fields.size() != 1) {
    return graphql_error(stats, "GRAPHQL_VALIDATION_FAILED",
                         "The API answers exactly one root field per operation");
  }
  const auto& field = operation.fields.front();
  auto unknown = [&](std::string_view type) {
    return graphql_error(stats, "GRAPHQL_VALIDATION_FAILED",
                         "Cannot query field \"" + field.name + "\" on type \"" + std::string(type) + "\".");
  };

  if (operation.kind == "mutation") {
    if (field.name != "generate") return unknown("Mutation");
    if (auto e = check_arguments(field, {"input"}, "Mutation")) {
      return graphql_error(stats, "GRAPHQL_VALIDATION_FAILED", *e);
    }
    if (auto e = check_selection(field.selection, job_fields, "Job")) {
      return graphql_error(stats, "GRAPHQL_VALIDATION_FAILED", *e);
    }
    auto* input = field.arguments.if_contains("input");
    if (!input || input->is_null()) {
      return graphql_error(stats, "GRAPHQL_VALIDATION_FAILED",
                           "Field \"generate\" argument \"input\" of type \"GenerateInput!\" is required, but it was not provided.");
    }
    auto params = parse_graphql_input(*input);
    if (auto* invalid = std::get_if<InvalidParameter>(&params)) return bad_input(stats, *invalid);
    return submit(request, std::get<GenerateParams>(std::move(params)), real_now, now, field.alias,
                  field.selection);
  }
  if (operation.kind != "query") {
    return graphql_error(stats, "GRAPHQL_VALIDATION_FAILED", "Subscriptions are not supported");
  }
  if (field.name == "__typename") return json_reply(data(field.alias, "Query"));
  if (field.name == "credits") {
    if (auto e = check_arguments(field, {}, "Query")) return graphql_error(stats, "GRAPHQL_VALIDATION_FAILED", *e);
    if (auto e = check_selection(field.selection, credits_fields, "Credits")) {
      return graphql_error(stats, "GRAPHQL_VALIDATION_FAILED", *e);
    }
    json::object credits{{"balance", account_.balance()}};
    return json_reply(data(field.alias, project(credits, field.selection, "Credits")));
  }
  if (field.name == "job") {
    if (auto e = check_arguments(field, {"id"}, "Query")) return graphql_error(stats, "GRAPHQL_VALIDATION_FAILED", *e);
    if (auto e = check_selection(field.selection, job_fields, "Job")) {
      return graphql_error(stats, "GRAPHQL_VALIDATION_FAILED", *e);
    }
    auto* id = field.arguments.if_contains("id");
    std::string job_id;
    if (id && id->is_string()) job_id = std::string(id->get_string());
    if (id && id->is_int64()) job_id = std::to_string(id->get_int64());
    if (job_id.empty()) {
      return graphql_error(stats, "GRAPHQL_VALIDATION_FAILED",
                           "Field \"job\" argument \"id\" of type \"ID!\" is required, but it was not provided.");
    }
    const Job* job = account_.find_job(job_id);
    if (!job) {
      ++stats.not_found;
      return simple_error(404, "NOT_FOUND", "No job with id \"" + job_id + "\"");
    }
    return json_reply(data(field.alias, project(job_json(*job), field.selection, "Job")));
  }
  return unknown("Query");
}

ApiReply Api::submit(const ApiRequest& request, GenerateParams params, TimePoint real_now, TimePoint now,
                     const std::string& response_key, const std::vector<graphql::Field>& selection) {
  std::string key;
  if (request.idempotency_key) {
    key = std::string(*request.idempotency_key);
    if (key.empty() || key.size() > max_idempotency_key_length) {
      return bad_input(account_.stats(), {"Idempotency-Key", "Invalid value for header \"Idempotency-Key\": must be 1 to " +
                                                                 std::to_string(max_idempotency_key_length) +
                                                                 " characters"});
    }
  }
  auto outcome = account_.submit(now, request.idempotency_key ? &key : nullptr, std::move(params));
  if (auto* error = std::get_if<ApiError>(&outcome)) return error_reply(*error, real_now);
  const auto& submitted = std::get<Submitted>(outcome);
  return json_reply(data(response_key, project(job_json(*submitted.job), selection, "Job")));
}

ApiReply Api::error_reply(const ApiError& error, TimePoint real_now) const {
  json::object extensions = error.extensions;
  ApiReply reply;
  if (error.retry_at) {
    // Real seconds, rounded up, at least 1: waiting that long always suffices.
    auto wait = scale_.to_real(*error.retry_at) - real_now;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(wait).count();
    auto seconds = std::max<std::int64_t>(1, (ms + 999) / 1000);
    reply.headers.emplace_back("Retry-After", std::to_string(seconds));
    extensions["retryAfterMs"] = std::max<std::int64_t>(0, ms);
  }
  reply.status = error.status;
  reply.body = error_body(error.code, error.message, extensions);
  return reply;
}

void Api::add_rate_headers(ApiReply& reply, TimePoint now) {
  auto u = account_.usage(now);
  auto real_ms = [&](TimePoint sim) { return std::to_string(epoch_ms(scale_.to_real(sim))); };
  auto remaining = [](std::int64_t limit, std::int64_t used) {
    return std::to_string(std::max<std::int64_t>(0, limit - used));
  };
  // A window without a limit (enterprise) reports no headers: API.md's clients fall
  // back to their configured plan for a window no header reports.
  if (u.limits.rpm > 0) {
    reply.headers.emplace_back("X-RateLimit-Limit", std::to_string(u.limits.rpm));
    reply.headers.emplace_back("X-RateLimit-Remaining", remaining(u.limits.rpm, u.window_used));
    reply.headers.emplace_back("X-RateLimit-Reset", real_ms(u.window_reset));
  }
  if (u.limits.daily > 0) {
    reply.headers.emplace_back("X-RateLimit-Limit-Day", std::to_string(u.limits.daily));
    reply.headers.emplace_back("X-RateLimit-Remaining-Day", remaining(u.limits.daily, u.day_used));
    if (account_.settings().reset_day_header) {
      reply.headers.emplace_back("X-RateLimit-Reset-Day", real_ms(u.day_reset));
    }
  }
  if (u.limits.parallel > 0) {
    reply.headers.emplace_back("X-RateLimit-Limit-Parallel", std::to_string(u.limits.parallel));
    reply.headers.emplace_back("X-RateLimit-Remaining-Parallel", remaining(u.limits.parallel, u.processing));
  }
}

ApiReply Api::handle_control(const ApiRequest& request, std::string_view path, TimePoint now) {
  auto control_error = [](unsigned status, std::string message) {
    return json_reply(json::object{{"error", std::move(message)}}, status);
  };
  account_.advance(now);
  if (path == "/_sim/stats" && request.method == "GET") return json_reply(stats_json(account_, scale_, now));
  if (path == "/_sim/jobs" && request.method == "GET") return json_reply(jobs_json(account_));
  if (path == "/_sim/reset" && request.method == "POST") {
    account_.reset(initial_settings_, now);
    return json_reply(stats_json(account_, scale_, now));
  }
  if (path == "/_sim/config" && request.method == "GET") return json_reply(config_json(account_));
  if (path == "/_sim/config" && request.method == "POST") {
    json::error_code ec;
    auto body = json::parse(request.body, ec);
    if (ec || !body.is_object()) return control_error(400, "the body must be a JSON object");
    try {
      std::optional<std::int64_t> balance;
      auto settings = apply_config(account_.settings(), body.get_object(), balance);
      account_.configure(std::move(settings));
      if (balance) account_.set_balance(*balance);
    } catch (const std::invalid_argument& e) {
      return control_error(400, e.what());
    }
    return json_reply(config_json(account_));
  }
  return control_error(404, "no such control endpoint: " + std::string(request.method) + " " + std::string(path));
}

ApiReply Api::handle_output(const ApiRequest& request, std::string_view path, TimePoint now) {
  auto& stats = account_.stats();
  ++stats.output_requests;
  account_.advance(now);
  auto text_reply = [](unsigned status, std::string body) {
    ApiReply reply;
    reply.status = status;
    reply.content_type = "text/plain";
    reply.body = std::move(body);
    return reply;
  };
  if (request.method != "GET") {
    auto reply = text_reply(405, "GET only\n");
    reply.headers.emplace_back("Allow", "GET");
    return reply;
  }
  auto name = path.substr(std::string_view("/outputs/").size());
  const Job* job = nullptr;
  if (name.ends_with(".mp4")) job = account_.find_job(std::string(name.substr(0, name.size() - 4)));
  const auto size = account_.settings().outputs.bytes;
  if (!job || job->status != JobStatus::completed || size <= 0) {
    ++stats.output_not_found;
    return text_reply(404, "no such video\n");
  }
  // A CDN's hops: ?hop=1, ?hop=2, ... until the configured count, each a relative
  // Location (absolute path), as edge servers send them.
  int hop = 0;
  if (auto query = request.target.find("?hop="); query != std::string_view::npos) {
    auto digits = request.target.substr(query + 5);
    std::from_chars(digits.data(), digits.data() + digits.size(), hop);
  }
  if (hop < account_.settings().outputs.redirects) {
    ++stats.output_redirects;
    auto reply = text_reply(302, "moved\n");
    reply.headers.emplace_back("Location", std::string(path) + "?hop=" + std::to_string(hop + 1));
    return reply;
  }
  switch (account_.draw_output_fault()) {
    case OutputFault::server_error:
      ++stats.output_server_errors;
      return text_reply(500, "internal error\n");
    case OutputFault::truncate: {
      ++stats.outputs_truncated;
      ApiReply reply;
      reply.content_type = "video/mp4";
      reply.body = output_content(job->id, static_cast<std::size_t>(size));
      reply.truncate_body_at = reply.body.size() / 2;
      return reply;
    }
    case OutputFault::none: break;
  }
  ++stats.outputs_served;
  ApiReply reply;
  reply.content_type = "video/mp4";
  reply.body = output_content(job->id, static_cast<std::size_t>(size));
  return reply;
}

std::vector<WebhookDelivery> Api::take_webhooks(TimePoint real_now) {
  auto now = scale_.to_sim(real_now);
  account_.advance(now);
  std::vector<WebhookDelivery> out;
  for (const Job* job : account_.take_finished()) {
    if (job->params.webhook_url.empty()) continue;
    auto faults = account_.draw_webhook_faults();
    if (faults.drop) continue;
    WebhookDelivery d;
    d.job_id = job->id;
    d.url = job->params.webhook_url;
    d.body = json::serialize(webhook_json(*job));
    d.signature = webhook_signature(webhook_secret_.reveal(), d.body);
    d.faults = faults;
    if (faults.delay) d.delay = std::chrono::milliseconds(account_.settings().webhook_faults.delay_ms);
    out.push_back(std::move(d));
  }
  return out;
}

std::optional<TimePoint> Api::next_due_real() const {
  auto due = account_.next_due();
  if (!due) return std::nullopt;
  return scale_.to_real(*due);
}

}  // namespace klingq::sim
