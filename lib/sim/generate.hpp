// The parameters of one generation request, validated the way the API validates them,
// and what they cost. Both submit endpoints (the GraphQL `generate(input:)` mutation and
// REST `POST /v1/text_to_video`) normalise to the same GenerateParams, so that an
// Idempotency-Key means the same thing on either and the fingerprint of a request does
// not depend on how it was spelled. Pure: JSON in, params or an error naming the
// parameter out.
#pragma once

#include "sim/provider.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <string>
#include <variant>

namespace klingq::sim {

inline constexpr std::size_t max_prompt_chars = 2500;

struct GenerateParams {
  std::string prompt;                  // the text, 1..2500 characters (UTF-8 code points)
  int duration = 5;                    // seconds: 5 or 10
  std::string aspect_ratio = "16:9";   // "16:9" | "9:16" | "1:1"
  std::string version;                 // "" = the API's default model
  std::string quality = "standard";    // "standard" | "high" (professional mode)
  boost::json::object options;         // every other option, passed through unchanged
  std::string webhook_url;             // "" = no webhook

  bool professional() const { return quality == "high"; }
  // A canonical serialisation (object keys sorted) of everything that defines the job:
  // two requests with equal fingerprints are "the same body" for the Idempotency-Key.
  std::string fingerprint() const;
};

// A rejected parameter: `parameter` is the API's name for it ("duration", "prompt", ...).
struct InvalidParameter {
  std::string parameter;
  std::string message;  // the whole sentence, naming the parameter
};

using ParseResult = std::variant<GenerateParams, InvalidParameter>;

// GraphQL GenerateInput: {type:"VIDEO", provider:"kling", input:{text}, options:{...},
// webhookUrl?}. `webhookUrl` is also accepted inside options.
ParseResult parse_graphql_input(const boost::json::value& input);
// REST body: {service:"kling", prompt, duration?, aspectRatio?, version?, quality?,
// options?, webhookUrl?}.
ParseResult parse_rest_body(const boost::json::value& body);

// What the job costs under the provider's price table (provider.hpp).
std::int64_t credit_cost(const GenerateParams& params, const CostTable& table);

// Number of Unicode code points in UTF-8 text (the prompt limit counts characters).
std::size_t utf8_length(std::string_view text);

// A JSON value serialised with object keys sorted, recursively.
std::string canonical_json(const boost::json::value& value);

}  // namespace klingq::sim
