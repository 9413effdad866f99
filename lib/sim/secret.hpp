// The simulator's secrets (the API key clients must send, the webhook signing secret).
// Its own small type rather than klingq's config::Secret: the simulator is the oracle
// klingq is tested against, so it shares none of klingq's code. The only thing a
// Secret does is refuse to be printed by accident: there is no operator<< and no
// implicit conversion, and reading it takes an explicit reveal().
#pragma once

#include <string>
#include <utility>

namespace klingq::sim {

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}

  // The value itself, for comparing and signing; never for a log line.
  const std::string& reveal() const { return value_; }
  bool empty() const { return value_.empty(); }

 private:
  std::string value_;
};

}  // namespace klingq::sim
