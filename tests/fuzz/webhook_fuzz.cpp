// The webhook receiver's decision over hostile POSTs. The input is split at its first
// newline into an X-Doitong-Signature value and a raw body. Random signatures almost never
// verify, so the same body is also decided with a correct signature (of the second,
// rotated-in secret): that drives the JSON path, which must then never answer 401.
#include "fuzz_target.hpp"

#include "webhook/receiver.hpp"
#include "webhook/signature.hpp"

#include <boost/json/parse.hpp>

namespace klingq::fuzz {

int fuzz_webhook(const std::uint8_t* data, std::size_t size) {
  static const std::vector<config::Secret> secrets{config::Secret("fuzz-old-secret"),
                                                   config::Secret("fuzz-new-secret")};
  const std::string_view input = as_text(data, size);
  const auto newline = input.find('\n');
  const std::string_view header = newline == std::string_view::npos ? "" : input.substr(0, newline);
  const std::string_view body = newline == std::string_view::npos ? input : input.substr(newline + 1);

  auto as_sent = webhook::decide("POST", "/kq", header, body, secrets);
  require(as_sent.verdict != webhook::Verdict::record || as_sent.completion,
          "a record verdict carries a completion");

  const std::string signature = webhook::sign(secrets[1].reveal(), body);
  auto signed_once = webhook::decide("POST", "/kq", signature, body, secrets);
  require(signed_once.verdict != webhook::Verdict::bad_signature, "a correct signature verifies");
  if (signed_once.verdict == webhook::Verdict::record) {
    const auto& completion = signed_once.completion;
    require(completion.has_value(), "a record verdict carries a completion");
    require(!completion->remote_id.empty(), "a recorded completion names its job");
    require(completion->status == "completed" || completion->status == "failed",
            "only terminal statuses are recorded");
    boost::json::error_code error;
    auto metadata = boost::json::parse(completion->metadata_json, error);
    require(!error && metadata.is_object(), "recorded metadata is a JSON object");
    require(signed_once.http_status == 200, "a recorded webhook is answered 200");
  } else {
    require(!signed_once.completion, "only a record verdict carries a completion");
  }
  // The signature covers every byte: one byte less and it no longer verifies.
  if (!body.empty()) {
    auto truncated = webhook::decide("POST", "/kq", signature, body.substr(1), secrets);
    require(truncated.verdict == webhook::Verdict::bad_signature, "a signature covers the whole body");
  }
  auto wrong_method = webhook::decide("PUT", "/kq", signature, body, secrets);
  require(wrong_method.http_status == 405, "only POST is accepted");
  return 0;
}

}  // namespace klingq::fuzz

KLINGQ_FUZZ_ENTRY(fuzz_webhook)
