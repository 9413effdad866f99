// The console's limit on failed token checks; see failure_limit.hpp.
#include "console/failure_limit.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstdio>

namespace klingq::console {

const char* to_string(LimitScope scope) {
  switch (scope) {
    case LimitScope::address: return "address";
    case LimitScope::overall: return "overall";
    case LimitScope::none: break;
  }
  return "none";
}

FailureLimiter::FailureLimiter(FailureLimitSettings settings) : settings_(settings) {
  settings_.per_address = std::max(1, settings_.per_address);
  settings_.overall = std::max(1, settings_.overall);
  settings_.window = std::max(settings_.window, std::chrono::milliseconds(1));
  settings_.max_addresses = std::max<std::size_t>(1, settings_.max_addresses);
}

std::chrono::nanoseconds FailureLimiter::interval(int limit) const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(settings_.window) / limit;
}

// Refused while the bucket has no room for one more failure (GCRA: the bucket would
// then hold more than a window's worth); retry when one failure's worth has drained.
LimitDecision FailureLimiter::refused(const Bucket& bucket, int limit, LimitScope scope, TimePoint now) const {
  const auto tolerance = std::chrono::duration_cast<std::chrono::nanoseconds>(settings_.window) - interval(limit);
  const auto held = bucket.empty_at - now;
  if (held <= tolerance) return {};
  LimitDecision refusal;
  refusal.allowed = false;
  refusal.scope = scope;
  refusal.retry_after = std::chrono::ceil<std::chrono::milliseconds>(held - tolerance);
  return refusal;
}

LimitDecision FailureLimiter::check(std::string_view address, TimePoint now) const {
  // The overall bucket first: when it is full, no address may try, tracked or not.
  if (auto overall = refused(overall_, settings_.overall, LimitScope::overall, now); !overall.allowed) return overall;
  auto it = addresses_.find(std::string(address));
  if (it == addresses_.end()) return {};
  return refused(it->second, settings_.per_address, LimitScope::address, now);
}

FailureRecord FailureLimiter::add(Bucket& bucket, int limit, LimitScope scope, TimePoint now) {
  if (bucket.empty_at <= now) bucket.burst_logged = false;  // drained: the next burst is new
  bucket.empty_at = std::max(bucket.empty_at, now) + std::chrono::duration_cast<Duration>(interval(limit));
  FailureRecord record;
  record.scope = scope;
  record.failures = limit;
  auto full = refused(bucket, limit, scope, now);
  record.retry_after = full.retry_after;
  if (!full.allowed && !bucket.burst_logged) {
    bucket.burst_logged = true;
    record.burst_started = true;
  }
  return record;
}

// Room for one more address: drained buckets go first (they hold nothing), then, if
// every tracked address still holds failures, the one nearest to draining.
void FailureLimiter::make_room(TimePoint now) {
  if (addresses_.size() < settings_.max_addresses) return;
  std::erase_if(addresses_, [now](const auto& item) { return item.second.empty_at <= now; });
  if (addresses_.size() < settings_.max_addresses) return;
  auto nearest = std::min_element(addresses_.begin(), addresses_.end(), [](const auto& a, const auto& b) {
    return a.second.empty_at < b.second.empty_at;
  });
  addresses_.erase(nearest);
}

FailureRecords FailureLimiter::record_failure(std::string_view address, TimePoint now) {
  FailureRecords records;
  records.overall = add(overall_, settings_.overall, LimitScope::overall, now);
  auto it = addresses_.find(std::string(address));
  if (it == addresses_.end()) {
    make_room(now);
    it = addresses_.emplace(std::string(address), Bucket{}).first;
  }
  records.address = add(it->second, settings_.per_address, LimitScope::address, now);
  return records;
}

std::string address_key(std::string_view address) {
  std::string text(address);
  // "[::1]" as some peers print it.
  if (text.size() > 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) return text;
  std::array<unsigned char, 16> v6{};
  if (inet_pton(AF_INET6, text.c_str(), v6.data()) != 1) return text;
  const bool mapped = std::all_of(v6.begin(), v6.begin() + 10, [](unsigned char b) { return b == 0; }) &&
                      v6[10] == 0xff && v6[11] == 0xff;
  char out[64];
  if (mapped) {
    std::snprintf(out, sizeof out, "%u.%u.%u.%u", v6[12], v6[13], v6[14], v6[15]);
    return out;
  }
  std::snprintf(out, sizeof out, "%x:%x:%x:%x::/64", v6[0] << 8 | v6[1], v6[2] << 8 | v6[3], v6[4] << 8 | v6[5],
                v6[6] << 8 | v6[7]);
  return out;
}

}  // namespace klingq::console
