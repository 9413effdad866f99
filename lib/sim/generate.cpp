// Validation of generation requests: see generate.hpp.
#include "sim/generate.hpp"

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <array>
#include <optional>
#include <string_view>
#include <vector>

namespace klingq::sim {
namespace json = boost::json;

namespace {

constexpr std::array<std::string_view, 3> aspect_ratios{"16:9", "9:16", "1:1"};
constexpr std::array<std::string_view, 6> versions{"1.0", "1.5", "1.6", "2.0", "2.1", "2.1-master"};
constexpr std::array<std::string_view, 2> qualities{"standard", "high"};
// Option keys the API interprets; every other key of `options` passes through.
constexpr std::array<std::string_view, 5> interpreted_options{"duration", "aspectRatio", "version",
                                                              "quality", "webhookUrl"};

template <std::size_t N>
bool one_of(std::string_view value, const std::array<std::string_view, N>& allowed) {
  return std::find(allowed.begin(), allowed.end(), value) != allowed.end();
}

template <std::size_t N>
std::string list(const std::array<std::string_view, N>& allowed) {
  std::string out;
  for (auto v : allowed) {
    if (!out.empty()) out += ", ";
    out += '"';
    out += v;
    out += '"';
  }
  return out;
}

InvalidParameter invalid(std::string parameter, const std::string& why) {
  std::string message = "Invalid value for parameter \"" + parameter + "\": " + why;
  return {std::move(parameter), std::move(message)};
}

bool is_http_url(std::string_view url) {
  std::string_view rest;
  if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else if (url.starts_with("https://")) {
    rest = url.substr(8);
  } else {
    return false;
  }
  if (rest.empty() || rest.front() == '/') return false;  // no host
  return std::none_of(url.begin(), url.end(), [](unsigned char c) { return c <= 0x20 || c == 0x7f; });
}

// The interpreted parameters, copied out of wherever the endpoint carries them (the
// passthrough options are moved into the result afterwards). Null = absent.
struct Sources {
  json::value prompt;
  json::value duration;
  json::value aspect_ratio;
  json::value version;
  json::value quality;
  json::value webhook_url;
};

json::value member(const json::object& object, std::string_view key) {
  auto* v = object.if_contains(key);
  return v ? *v : json::value();
}

// Treats an explicit JSON null like an absent optional parameter (GraphQL semantics).
const json::value* present(const json::value* v) { return v && !v->is_null() ? v : nullptr; }
const json::value* present(const json::value& v) { return present(&v); }

ParseResult validate(const std::string& prompt_parameter, const Sources& in, json::object passthrough) {
  GenerateParams params;
  const json::value* prompt = present(in.prompt);
  if (!prompt) return invalid(prompt_parameter, "is required");
  if (!prompt->is_string()) return invalid(prompt_parameter, "must be a string");
  params.prompt = std::string(prompt->get_string());
  auto length = utf8_length(params.prompt);
  if (length == 0 || std::all_of(params.prompt.begin(), params.prompt.end(),
                                 [](unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); })) {
    return invalid(prompt_parameter, "must not be empty");
  }
  if (length > max_prompt_chars) {
    return invalid(prompt_parameter, "must be at most " + std::to_string(max_prompt_chars) +
                                         " characters (got " + std::to_string(length) + ")");
  }
  if (auto* d = present(in.duration)) {
    std::optional<std::int64_t> seconds;
    if (d->is_int64()) seconds = d->get_int64();
    if (d->is_uint64() && d->get_uint64() <= 10) seconds = static_cast<std::int64_t>(d->get_uint64());
    if (!seconds || (*seconds != 5 && *seconds != 10)) return invalid("duration", "must be 5 or 10");
    params.duration = static_cast<int>(*seconds);
  }
  auto string_in = [&](const json::value* v, const char* name, auto allowed,
                       std::string& out) -> std::optional<InvalidParameter> {
    v = present(v);
    if (!v) return std::nullopt;
    if (!v->is_string() || !one_of(v->get_string(), allowed)) {
      return invalid(name, "must be one of " + list(allowed));
    }
    out = std::string(v->get_string());
    return std::nullopt;
  };
  if (auto e = string_in(&in.aspect_ratio, "aspectRatio", aspect_ratios, params.aspect_ratio)) return *e;
  if (auto e = string_in(&in.version, "version", versions, params.version)) return *e;
  if (auto e = string_in(&in.quality, "quality", qualities, params.quality)) return *e;
  if (auto* w = present(in.webhook_url)) {
    if (!w->is_string() || !is_http_url(w->get_string())) {
      return invalid("webhookUrl", "must be an http:// or https:// URL");
    }
    params.webhook_url = std::string(w->get_string());
  }
  for (auto key : interpreted_options) passthrough.erase(key);
  params.options = std::move(passthrough);
  return params;
}

}  // namespace

std::size_t utf8_length(std::string_view text) {
  return static_cast<std::size_t>(
      std::count_if(text.begin(), text.end(), [](unsigned char c) { return (c & 0xC0) != 0x80; }));
}

std::string canonical_json(const json::value& value) {
  if (!value.is_object()) {
    if (!value.is_array()) return json::serialize(value);
    std::string out = "[";
    bool first = true;
    for (const auto& element : value.get_array()) {
      if (!first) out += ',';
      first = false;
      out += canonical_json(element);
    }
    return out + "]";
  }
  const auto& object = value.get_object();
  std::vector<const json::key_value_pair*> members;
  members.reserve(object.size());
  for (const auto& kv : object) members.push_back(&kv);
  std::sort(members.begin(), members.end(),
            [](const auto* a, const auto* b) { return a->key() < b->key(); });
  std::string out = "{";
  bool first = true;
  for (const auto* kv : members) {
    if (!first) out += ',';
    first = false;
    out += json::serialize(json::value(kv->key()));
    out += ':';
    out += canonical_json(kv->value());
  }
  return out + "}";
}

std::string GenerateParams::fingerprint() const {
  json::object o;
  o["prompt"] = prompt;
  o["duration"] = duration;
  o["aspectRatio"] = aspect_ratio;
  o["version"] = version;
  o["quality"] = quality;
  o["options"] = options;
  o["webhookUrl"] = webhook_url;
  return canonical_json(o);
}

ParseResult parse_graphql_input(const json::value& input) {
  if (!input.is_object()) return invalid("input", "must be an object");
  const auto& object = input.get_object();
  for (const auto& kv : object) {
    auto key = kv.key();
    if (key != "type" && key != "provider" && key != "input" && key != "options" &&
        key != "webhookUrl") {
      // GraphQL input objects reject unknown fields; so does the simulator.
      return invalid(std::string(key), "is not a field of GenerateInput");
    }
  }
  auto type_value = member(object, "type");
  auto* type = present(type_value);
  if (!type || !type->is_string() || type->get_string() != "VIDEO") {
    return invalid("type", "must be VIDEO");
  }
  auto provider_value = member(object, "provider");
  auto* provider = present(provider_value);
  if (!provider || !provider->is_string() || provider->get_string() != "kling") {
    return invalid("provider", "must be \"kling\"");
  }
  auto inner_value = member(object, "input");
  auto* inner = present(inner_value);
  if (!inner) return invalid("input.text", "is required");
  if (!inner->is_object()) return invalid("input", "must be an object with a \"text\" field");
  json::object options;
  if (auto* o = present(object.if_contains("options"))) {
    if (!o->is_object()) return invalid("options", "must be an object");
    options = o->get_object();
  }
  Sources in;
  in.prompt = member(inner->get_object(), "text");
  in.duration = member(options, "duration");
  in.aspect_ratio = member(options, "aspectRatio");
  in.version = member(options, "version");
  in.quality = member(options, "quality");
  in.webhook_url = member(object, "webhookUrl");
  if (in.webhook_url.is_null()) in.webhook_url = member(options, "webhookUrl");
  // The interpreted values are copied out before `options` is moved into the result.
  return validate("input.text", in, std::move(options));
}

ParseResult parse_rest_body(const json::value& body) {
  if (!body.is_object()) return invalid("body", "must be a JSON object");
  const auto& object = body.get_object();
  auto* service = present(object.if_contains("service"));
  if (!service) return invalid("service", "is required");
  if (!service->is_string() || service->get_string() != "kling") {
    return invalid("service", "must be \"kling\"");
  }
  json::object options;
  if (auto* o = present(object.if_contains("options"))) {
    if (!o->is_object()) return invalid("options", "must be an object");
    options = o->get_object();
  }
  // Top-level keys that are not parameters of the endpoint pass through as options
  // (camera control and the like), the way a REST API forwards extras.
  for (const auto& kv : object) {
    auto key = kv.key();
    if (key == "service" || key == "prompt" || key == "options") continue;
    options[key] = kv.value();
  }
  Sources in;
  in.prompt = member(object, "prompt");
  in.duration = member(options, "duration");
  in.aspect_ratio = member(options, "aspectRatio");
  in.version = member(options, "version");
  in.quality = member(options, "quality");
  in.webhook_url = member(options, "webhookUrl");
  return validate("prompt", in, std::move(options));
}

std::int64_t credit_cost(const GenerateParams& params, const CostTable& table) {
  if (params.professional()) return params.duration == 10 ? table.professional_10 : table.professional_5;
  return params.duration == 10 ? table.standard_10 : table.standard_5;
}

}  // namespace klingq::sim
