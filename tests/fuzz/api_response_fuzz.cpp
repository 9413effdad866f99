// The API's answers to submit, status and credit queries, as lib/api classifies them.
// The first byte picks the HTTP status (or a transport error); the rest is the body.
#include "fuzz_target.hpp"

#include "api/protocol.hpp"

#include <boost/json/parse.hpp>
#include <boost/system/errc.hpp>

namespace klingq::fuzz {

int fuzz_api_response(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static constexpr unsigned statuses[16] = {200, 201, 202, 204, 301, 400, 401, 402,
                                            403, 404, 408, 409, 429, 500, 502, 503};
  const std::uint8_t first = data[0];
  http::ClientResult result;
  if (first == 0xFF) {
    result.error = boost::system::errc::make_error_code(boost::system::errc::connection_reset);
    result.maybe_delivered = true;
  } else if (first >= 0xE0) {
    result.response.status = 100 + (first - 0xE0) * 17u;  // odd statuses, 100..610
  } else {
    result.response.status = statuses[first % 16];
  }
  result.response.body.assign(as_text(data + 1, size - 1));

  auto submit = api::classify_submit(result);
  if (submit.outcome == api::OutcomeClass::accepted) {
    require(!submit.remote_id.empty(), "an accepted submit has a job id");
    require(result.response.status >= 200 && result.response.status < 300,
            "only a 2xx is accepted");
  }
  if (result.error) {
    require(submit.outcome == api::OutcomeClass::transient, "a transport error is transient");
  }

  auto status = api::parse_status(result);
  boost::json::error_code error;
  auto metadata = boost::json::parse(status.metadata_json, error);
  require(!error && metadata.is_object(), "status metadata is a JSON object");
  require(!status.terminal || status.outcome.outcome == api::OutcomeClass::accepted,
          "only a readable status is terminal");

  auto balance = api::parse_balance(result);
  require(balance.outcome.outcome != api::OutcomeClass::accepted || balance.balance.has_value(),
          "an accepted balance query has a balance");
  return 0;
}

}  // namespace klingq::fuzz

KLINGQ_FUZZ_ENTRY(fuzz_api_response)
