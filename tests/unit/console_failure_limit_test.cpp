// The console's limit on failed token checks (lib/console/failure_limit), on a fake
// clock: a burst per address and overall, refusal with the time to retry, draining at
// the configured rate, one "burst started" per burst, bounded memory, address keys.
#include "console/failure_limit.hpp"

#include <doctest/doctest.h>

using namespace klingq;
using namespace klingq::console;
using namespace std::chrono_literals;

namespace {

const TimePoint t0 = from_epoch_ms(1'800'000'000'000);

FailureLimitSettings small(int per_address, int overall, std::chrono::milliseconds window, std::size_t max = 100) {
  FailureLimitSettings s;
  s.per_address = per_address;
  s.overall = overall;
  s.window = window;
  s.max_addresses = max;
  return s;
}

}  // namespace

TEST_CASE("console failure limit: an address gets its burst, then waits one failure's drain time") {
  FailureLimiter limiter(small(5, 100, 60s));
  for (int i = 0; i < 5; ++i) {
    CAPTURE(i);
    REQUIRE(limiter.check("10.0.0.1", t0).allowed);
    auto record = limiter.record_failure("10.0.0.1", t0);
    CHECK(record.address.burst_started == (i == 4));  // the fifth fills the bucket
    CHECK_FALSE(record.overall.burst_started);
  }
  auto refused = limiter.check("10.0.0.1", t0);
  CHECK_FALSE(refused.allowed);
  CHECK(refused.scope == LimitScope::address);
  CHECK(refused.retry_after == 12s);  // 60 s / 5 failures
  // Another address is not held by this one's failures.
  CHECK(limiter.check("10.0.0.2", t0).allowed);
  // Still refused just before, allowed at the retry time; then one failure fills it again.
  CHECK_FALSE(limiter.check("10.0.0.1", t0 + 11999ms).allowed);
  CHECK(limiter.check("10.0.0.1", t0 + 12s).allowed);
  auto again = limiter.record_failure("10.0.0.1", t0 + 12s);
  CHECK_FALSE(again.address.burst_started);  // the same burst: logged once
  CHECK_FALSE(limiter.check("10.0.0.1", t0 + 12s).allowed);
  // Fully drained after a whole window of silence: a new burst, logged again.
  const auto later = t0 + 12s + 60s;
  for (int i = 0; i < 5; ++i) {
    REQUIRE(limiter.check("10.0.0.1", later).allowed);
    auto record = limiter.record_failure("10.0.0.1", later);
    CHECK(record.address.burst_started == (i == 4));
  }
}

TEST_CASE("console failure limit: failures from many addresses fill the overall bucket, which holds every address") {
  FailureLimiter limiter(small(5, 12, 120s));
  for (int i = 0; i < 12; ++i) {
    std::string address = "10.0.1." + std::to_string(i);
    REQUIRE(limiter.check(address, t0).allowed);
    auto record = limiter.record_failure(address, t0);
    CHECK(record.overall.burst_started == (i == 11));
  }
  auto refused = limiter.check("192.0.2.7", t0);  // never failed, still refused
  CHECK_FALSE(refused.allowed);
  CHECK(refused.scope == LimitScope::overall);
  CHECK(refused.retry_after == 10s);  // 120 s / 12
  CHECK(limiter.check("192.0.2.7", t0 + 10s).allowed);
}

TEST_CASE("console failure limit: at most max_addresses are tracked, drained ones first") {
  FailureLimiter limiter(small(3, 1'000'000, 30s, 4));
  for (int i = 0; i < 4; ++i) limiter.record_failure("10.0.2." + std::to_string(i), t0 + std::chrono::seconds(i));
  CHECK(limiter.tracked_addresses() == 4);
  // The fifth address evicts the one nearest to draining (the first), not a busy one.
  for (int i = 0; i < 3; ++i) limiter.record_failure("10.0.2.3", t0 + 4s);
  CHECK_FALSE(limiter.check("10.0.2.3", t0 + 4s).allowed);
  limiter.record_failure("10.0.2.9", t0 + 5s);
  CHECK(limiter.tracked_addresses() == 4);
  CHECK_FALSE(limiter.check("10.0.2.3", t0 + 5s).allowed);  // still held
  // Much later every bucket has drained: one sweep drops them all.
  limiter.record_failure("10.0.2.10", t0 + 1h);
  CHECK(limiter.tracked_addresses() == 1);
}

TEST_CASE("console failure limit: address keys group an IPv6 host's /64 and unwrap IPv4-mapped addresses") {
  CHECK(address_key("127.0.0.1") == "127.0.0.1");
  CHECK(address_key("::ffff:192.0.2.1") == "192.0.2.1");
  CHECK(address_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64");
  CHECK(address_key("2001:db8:1:2:bbbb::9") == address_key("[2001:db8:1:2::7]"));
  CHECK(address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1"));
  CHECK(address_key("::1") == "0:0:0:0::/64");
  CHECK(address_key("not an address") == "not an address");
}
