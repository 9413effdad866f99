// The one error vocabulary of STYLE.md rule 5: every answer of the API (or its absence)
// is classified once into an OutcomeClass, with the API's own words kept for the job's
// error row. No I/O and no HTTP types, so the pure decisions (lib/dispatcher/transition)
// and the metrics can name it without pulling in the client.
#pragma once

#include "ratelimit/headers.hpp"
#include "util/clock.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace klingq::api {

enum class OutcomeClass {
  accepted,      // the API took the job (or replayed it for our idempotency key)
  invalid_job,   // 400 / BAD_USER_INPUT / 409: the job itself is wrong, do not retry
  transient,     // 5xx, timeout, reset, malformed body: retry with backoff, same key
  rate_limited,  // 429: not the job's fault, pause the window
  no_credit,     // 402: not the job's fault, pause until the balance allows
  unauthorized,  // 401: nothing can succeed until the key is fixed
};
const char* to_string(OutcomeClass outcome);
// Only transient outcomes spend one of the job's attempts and come back by backoff.
bool is_retryable(OutcomeClass outcome);

struct Outcome {
  OutcomeClass outcome = OutcomeClass::transient;
  unsigned http_status = 0;  // 0 when no response arrived
  std::string code;          // extensions.code, when the API gave one
  std::string message;       // the API's own words (or the transport error), for last_error
  // accepted:
  std::string remote_id;
  std::optional<std::int64_t> credit_cost;
  std::string remote_status;
  // no_credit:
  std::optional<std::int64_t> credits_available;
  // rate_limited: the window the API named (nullopt: not said)
  std::optional<ratelimit::Window> window;
};

// Backoff before retry number `attempt` (1-based): base·2^(attempt-1) capped at max,
// with "equal jitter" (half fixed, half random) so a 500 storm does not come back in
// lockstep. `unit_random` is in [0, 1) and injected for tests.
Duration retry_delay(int attempt, Duration base, Duration max, double unit_random);

}  // namespace klingq::api
