// The webhook receiver's decision, without sockets: a POST's raw body and signature
// header in, either a completion to record or the status to refuse with. Signature
// first (over the raw bytes, before any parsing), then the JSON of API.md.
#pragma once

#include "config/config.hpp"
#include "api/completion.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace klingq::webhook {

enum class Verdict {
  record,              // a terminal status to apply
  ignore,              // signed and readable but not terminal (e.g. processing): 200
  bad_signature,       // missing or wrong X-Doitong-Signature: 401
  bad_request,         // signed but not the payload of API.md: 400
  wrong_method,        // 405
  not_found,           // 404
};

struct Decision {
  Verdict verdict = Verdict::bad_request;
  unsigned http_status = 400;
  std::string reason;                  // for the response body and the log
  std::optional<api::Completion> completion;
};

Decision decide(std::string_view method, std::string_view path, std::string_view signature_header,
                std::string_view body, const std::vector<config::Secret>& secrets);

// The path part of webhook.public_url that the receiver serves ("/" when none).
std::string path_of(const std::string& public_url);

}  // namespace klingq::webhook
