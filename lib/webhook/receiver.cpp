#include "webhook/receiver.hpp"

#include "api/protocol.hpp"
#include "webhook/signature.hpp"

#include <boost/json.hpp>

namespace klingq::webhook {
namespace json = boost::json;

std::string path_of(const std::string& public_url) {
  auto scheme = public_url.find("://");
  if (scheme == std::string::npos) return "/";
  auto slash = public_url.find('/', scheme + 3);
  if (slash == std::string::npos) return "/";
  auto path = public_url.substr(slash);
  if (auto q = path.find('?'); q != std::string::npos) path.resize(q);
  return path.empty() ? "/" : path;
}

Decision decide(std::string_view method, std::string_view path, std::string_view signature_header,
                std::string_view body, const std::vector<config::Secret>& secrets) {
  Decision d;
  (void)path;  // any path on the webhook port is ours; the router checks it
  if (method != "POST") return {Verdict::wrong_method, 405, "only POST", std::nullopt};
  if (!verify(signature_header, body, secrets)) {
    return {Verdict::bad_signature, 401, "missing or invalid X-Doitong-Signature", std::nullopt};
  }
  json::error_code ec;
  auto value = json::parse(body, ec);
  if (ec || !value.is_object()) return {Verdict::bad_request, 400, "body is not a JSON object", std::nullopt};
  const auto& object = value.as_object();
  auto text = [&](const char* key) -> std::string {
    auto v = object.if_contains(key);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
  };
  api::Completion completion;
  completion.remote_id = text("id");
  completion.status = text("status");
  if (completion.remote_id.empty() || completion.status.empty()) {
    return {Verdict::bad_request, 400, "payload needs string fields id and status", std::nullopt};
  }
  if (completion.status != "completed" && completion.status != "failed") {
    return {Verdict::ignore, 200, "status " + completion.status + " is not terminal", std::nullopt};
  }
  // A url that is there but not a string (a number, an object) is a malformed payload,
  // not a completion without a video: recording it would lose the video for good.
  if (auto url = object.if_contains("url"); url && !url->is_string() && !url->is_null()) {
    return {Verdict::bad_request, 400, "url must be a string", std::nullopt};
  }
  completion.url = text("url");
  json::object metadata;
  if (auto m = object.if_contains("metadata"); m && m->is_object()) metadata = m->as_object();
  completion.metadata_json = api::jsonb_text(std::move(metadata));
  completion.error = text("error");
  if (completion.error.empty()) completion.error = text("message");
  d.verdict = Verdict::record;
  d.http_status = 200;
  d.reason = "ok";
  d.completion = std::move(completion);
  return d;
}

}  // namespace klingq::webhook
