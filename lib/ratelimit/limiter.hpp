// The account's three limits as one pure state machine: requests per window (paced,
// GCRA style, at the rate that spends what the window has left by its reset), jobs per
// day, and parallel jobs. It starts from the configured plan; every response's headers
// then rule. The state is a plain struct because its home is the klingq.account row:
// a claim locks the row, loads the state, asks this module what may be sent, records
// what it took, and writes the row back, so several instances share one limiter.
//
// The provider's day: its daily window need not begin at 00:00 UTC (a provider in UTC+8
// begins it at 16:00 UTC). A Reset-Day header, when sent, says when it ends. Without one
// the end is assumed: limits.day_starts_at, else the hour the API's own count was last
// seen to start again, else 00:00 UTC. The API's count rules over ours: a Remaining-Day
// with more room than submits on the wire can explain means its day began, and when.
#pragma once

#include "ratelimit/headers.hpp"
#include "util/clock.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace klingq::ratelimit {

struct AccountState {
  // Request window (X-RateLimit-*). Limits use 0 for unlimited.
  std::int64_t rpm_limit = 10;
  std::optional<std::int64_t> rpm_remaining;  // what is left in the current window
  std::optional<TimePoint> rpm_reset_at;      // when the current window ends
  TimePoint rpm_next_at{};   // pacing: earliest next request (GCRA TAT); epoch = long ago
  TimePoint poll_next_at{};  // pacing of status polls within their share
  std::optional<TimePoint> rpm_paused_until;  // after a 429 naming this window
  // Jobs per day.
  std::int64_t day_limit = 100;
  std::int64_t day_used = 0;                  // submits counted against today
  std::optional<TimePoint> day_reset_at;      // next daily reset
  std::optional<TimePoint> day_paused_until;
  bool day_reset_reported = false;            // day_reset_at came from Reset-Day (else assumed)
  std::optional<Duration> day_start_offset;   // learned: the API's day begins this long after 00:00 UTC
  // When submits were last taken. Two answer deadlines later every one of them was
  // answered before any request now answered was sent: that answer's count is not stale.
  std::optional<TimePoint> day_submitted_at;
  // Input, not stored: submits sent and not yet answered (rows dispatching). The API may
  // not have counted them yet, so they explain that much more room in its Remaining-Day.
  std::int64_t day_unanswered = 0;
  // When a claim last found runnable rows held by capacity (the parallel limit, the
  // daily cap, credits) rather than by the request budget. Until the next claim that is
  // not, and for at most dispatch_hold_memory, polls may use the whole request rate.
  std::optional<TimePoint> capacity_held_at;
  // Parallel jobs (the in-flight count itself lives in klingq.jobs).
  std::int64_t parallel_limit = 1;
  std::optional<TimePoint> parallel_paused_until;
  std::string limits_source = "plan";         // "plan" until a header arrives
};

struct LimiterSettings {
  Duration fallback_window = std::chrono::seconds(60);  // window length when no Reset known
  double poll_share = 0.2;  // most of the request rate polls may take
  bool polls_count_against_rpm = true;
  // limits.day_starts_at: the provider's day begins this long after 00:00 UTC, [0, 24h).
  // Unset: learned from the API's count, else 00:00 UTC.
  std::optional<Duration> day_starts_at;
  // api.request_timeout_ms: no answer arrives later than this after its request was sent.
  Duration answer_deadline = std::chrono::seconds(30);
};

// Why nothing (more) may be sent now.
enum class Blocker { none, rpm, daily, parallel };
const char* to_string(Blocker blocker);

struct Allowance {
  std::int64_t count = 0;                  // how many may start now
  TimePoint retry_at = TimePoint::max();   // when to ask again if count is short
  Blocker blocked_by = Blocker::none;      // the tightest limit when count < wanted
};

// The first instant strictly after t at which a day beginning `offset` after 00:00 UTC
// begins (offset 0: next_utc_midnight).
TimePoint next_day_start(TimePoint t, Duration offset);
// Where the provider's day is assumed to begin, after 00:00 UTC: the learned hour, else
// the configured one, else 0. (Learned wins: it is what the API's own count showed.)
Duration day_offset(const AccountState& state, const LimiterSettings& settings);
// True when no Reset-Day header said when today's window ends: while the daily cap holds
// dispatch, look at the API's count again (a balance query costs no credits).
bool day_reset_assumed(const AccountState& state);

// Starts a fresh state from the configured plan (0 = unlimited).
AccountState from_plan(std::int64_t rpm, std::int64_t parallel, std::int64_t daily);

// Ends windows whose reset has passed. Call before any decision at `now`.
void roll(AccountState& state, TimePoint now, const LimiterSettings& settings);

// How many submits (each one request and one job of the day and one parallel slot)
// may start now, at most `wanted`, given `in_flight` jobs already holding slots.
Allowance submit_allowance(const AccountState& state, std::int64_t in_flight,
                           std::int64_t wanted, TimePoint now, const LimiterSettings& settings);
// Records `count` submits sent at `now`.
void take_submits(AccountState& state, std::int64_t count, TimePoint now,
                  const LimiterSettings& settings);

// After a claim that found runnable rows: `held_by_capacity` when the parallel limit, the
// daily cap or credits (not the request budget) kept it from sending all it wanted.
void note_claim(AccountState& state, bool held_by_capacity, TimePoint now);
// True while a recent claim was held by capacity: submits want no request token, so
// polls may take the share submits would have used.
bool capacity_holds_dispatch(const AccountState& state, TimePoint now);
inline constexpr Duration dispatch_hold_memory = std::chrono::seconds(30);

// How many status polls may be sent now: within poll_share of the request rate, or, while
// capacity holds dispatch (capacity_holds_dispatch), at the whole request rate: finding
// finished jobs is then what frees capacity. Polls and submits share one pacing, so
// neither way exceeds the rate.
Allowance poll_allowance(const AccountState& state, std::int64_t wanted, TimePoint now,
                         const LimiterSettings& settings);
void take_polls(AccountState& state, std::int64_t count, TimePoint now,
                const LimiterSettings& settings);

// One other request (a credit balance query): may it go now, and record it.
Allowance other_allowance(const AccountState& state, TimePoint now,
                          const LimiterSettings& settings);
void take_other(AccountState& state, TimePoint now, const LimiterSettings& settings);

// Learns from a response's headers: Limit overrides the plan, Remaining caps what may be
// sent until Reset, a later Reset starts a new window. A Remaining-Day showing more room
// than state.day_unanswered and reordered responses can explain is the API's count, and
// when it fell by more than half a new day at `now` (learning day_start_offset when no
// Reset-Day header came with it). Reordering is bounded by the parallel limit, or ruled
// out by two answer deadlines without a submit (day_submitted_at).
void observe(AccountState& state, const Observation& observation, TimePoint now,
             const LimiterSettings& settings = {});

// A 429: pauses the named window (rpm when unnamed) until Retry-After, else the
// window's reported reset, else one pacing interval (daily: the assumed day start). A
// daily 429 that says when the API's day begins teaches that hour.
void on_rate_limited(AccountState& state, std::optional<Window> window,
                     const Observation& observation, TimePoint now,
                     const LimiterSettings& settings);

// A submit the API did not accept (error before acceptance) gives its daily count back.
void return_unaccepted(AccountState& state, std::int64_t count);

}  // namespace klingq::ratelimit
