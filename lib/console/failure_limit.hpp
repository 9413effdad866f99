// The console's limit on failed token checks (a wrong token at POST /login, a wrong
// "Authorization: Bearer"), so that the login form and the bearer header cannot be used
// to guess tokens. Pure: state in, `now` in, a decision out; no sockets, no clock.
//
// Two buckets of the same kind, one per client address and one over all of them. Each
// holds up to `limit` failures and drains at limit per `window` (GCRA: the state is the
// time at which the bucket is empty again). While a bucket has no room for one more
// failure, every token check it governs is refused, right token or wrong: answering a
// right guess while refusing wrong ones would tell the guesser which one was right.
// Sessions already logged in (the cookie, an HMAC no one can guess) are not checked,
// so operators who are logged in keep working through an attack on the overall bucket.
//
// Memory is bounded: at most `max_addresses` addresses are tracked. When that many are,
// drained buckets are dropped first, then the ones nearest to draining; the overall
// bucket still counts every failure, so dropping an address never frees a guess.
#pragma once

#include "util/clock.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace klingq::console {

struct FailureLimitSettings {
  int per_address = 20;                         // failures one address may make in a burst
  int overall = 200;                            // failures all addresses together may make
  std::chrono::milliseconds window{600000};     // a full bucket drains in this time
  std::size_t max_addresses = 10000;            // addresses tracked at once (about 1 MB)
};

enum class LimitScope { none, address, overall };
const char* to_string(LimitScope scope);

struct LimitDecision {
  bool allowed = true;
  LimitScope scope = LimitScope::none;      // which bucket refused
  std::chrono::milliseconds retry_after{0};  // when one more check is allowed
};

// What recording one failure led to.
struct FailureRecord {
  // This failure filled a bucket that had not been full since it last drained: the
  // start of a burst, to be logged (once; later refusals of the same burst are not).
  bool burst_started = false;
  LimitScope scope = LimitScope::none;
  std::chrono::milliseconds retry_after{0};
  std::int64_t failures = 0;  // failures the full bucket holds (its limit)
};
struct FailureRecords {
  FailureRecord address;
  FailureRecord overall;
};

class FailureLimiter {
 public:
  explicit FailureLimiter(FailureLimitSettings settings);

  // May a token from `address` be checked now?
  LimitDecision check(std::string_view address, TimePoint now) const;
  // A token from `address` was wrong: counted in its bucket and the overall one.
  FailureRecords record_failure(std::string_view address, TimePoint now);

  std::size_t tracked_addresses() const { return addresses_.size(); }
  const FailureLimitSettings& settings() const { return settings_; }

 private:
  struct Bucket {
    TimePoint empty_at{};    // when the bucket has drained completely
    bool burst_logged = false;  // filled since it last drained, and said so
  };
  std::chrono::nanoseconds interval(int limit) const;  // the drain time of one failure
  LimitDecision refused(const Bucket& bucket, int limit, LimitScope scope, TimePoint now) const;
  FailureRecord add(Bucket& bucket, int limit, LimitScope scope, TimePoint now);
  void make_room(TimePoint now);

  FailureLimitSettings settings_;
  Bucket overall_;
  std::unordered_map<std::string, Bucket> addresses_;
};

// The bucket key of a client address: IPv4 as is, IPv4-mapped IPv6 as its IPv4, other
// IPv6 by its /64 (one host usually holds a whole /64, and could otherwise change
// address per guess). Unparsable text is its own key.
std::string address_key(std::string_view address);

}  // namespace klingq::console
