#include "ratelimit/limiter.hpp"

#include <algorithm>
#include <limits>

namespace klingq::ratelimit {
namespace {

constexpr std::int64_t unlimited = std::numeric_limits<std::int64_t>::max() / 4;
// A later Reset within this much of the known one is the same window reported again
// (delta-second Reset values drift by a second between responses).
constexpr auto same_window_tolerance = std::chrono::milliseconds(1500);

bool paused(const std::optional<TimePoint>& until, TimePoint now) { return until && now < *until; }

// Spacing between requests so the rest of the window is spread evenly up to its reset.
Duration spacing(const AccountState& s, TimePoint now, const LimiterSettings& settings) {
  if (s.rpm_limit <= 0) return Duration::zero();
  if (s.rpm_remaining && s.rpm_reset_at && *s.rpm_reset_at > now && *s.rpm_remaining > 0) {
    return (*s.rpm_reset_at - now) / *s.rpm_remaining;
  }
  return settings.fallback_window / s.rpm_limit;
}

// Tokens a GCRA with burst `burst` allows at now, given the next-at time.
std::int64_t paced_tokens(TimePoint next_at, Duration interval, std::int64_t burst, TimePoint now) {
  if (now < next_at) return 0;
  if (interval <= Duration::zero()) return burst;
  auto ahead = (now - next_at) / interval;
  return std::min<std::int64_t>(burst, 1 + static_cast<std::int64_t>(ahead));
}

// A second's worth of requests may go together: no burst at all up to 119 a minute,
// so a limit that drops under our feet (a plan downgrade) is hit by one request, not a burst.
std::int64_t burst_of(const AccountState& s) { return std::max<std::int64_t>(1, s.rpm_limit / 60); }

constexpr Duration one_day = std::chrono::hours(24);

// The time of day (after 00:00 UTC) of t.
Duration offset_of(TimePoint t) { return t - std::chrono::floor<std::chrono::days>(t); }

bool held_recently(const AccountState& s, TimePoint now) {
  return s.capacity_held_at && now >= *s.capacity_held_at && now - *s.capacity_held_at <= dispatch_hold_memory;
}

// Spacing of status polls: the request spacing stretched by poll_share, or the request
// spacing itself while capacity holds dispatch.
Duration poll_spacing(const AccountState& s, TimePoint now, const LimiterSettings& settings, Duration interval) {
  auto base = interval > Duration::zero() ? interval : settings.fallback_window / std::max<std::int64_t>(1, s.rpm_limit);
  if (held_recently(s, now)) return base;
  return std::chrono::duration_cast<Duration>(base / settings.poll_share);
}

Allowance rpm_tokens(const AccountState& s, std::int64_t wanted, TimePoint now,
                     const LimiterSettings& /*settings*/, TimePoint next_at, Duration interval) {
  Allowance a;
  if (paused(s.rpm_paused_until, now)) {
    a.retry_at = *s.rpm_paused_until;
    a.blocked_by = Blocker::rpm;
    return a;
  }
  if (s.rpm_limit <= 0) {
    a.count = wanted;
    return a;
  }
  std::int64_t left = unlimited;
  if (s.rpm_remaining && s.rpm_reset_at && *s.rpm_reset_at > now) {
    left = *s.rpm_remaining;
    if (left <= 0) {
      a.retry_at = *s.rpm_reset_at;
      a.blocked_by = Blocker::rpm;
      return a;
    }
  }
  auto tokens = std::min({paced_tokens(next_at, interval, burst_of(s), now), left, wanted});
  a.count = tokens;
  if (tokens < wanted) {
    a.blocked_by = Blocker::rpm;
    a.retry_at = std::max(now, next_at) + (tokens > 0 ? interval : Duration::zero());
    if (now < next_at) a.retry_at = next_at;
  }
  return a;
}

void narrow(Allowance& a, std::int64_t limit_left, Blocker blocker, TimePoint retry_at) {
  if (limit_left < a.count) {
    a.count = std::max<std::int64_t>(0, limit_left);
    a.blocked_by = blocker;
    a.retry_at = retry_at;
  } else if (a.count <= 0 && limit_left <= 0 && retry_at > a.retry_at) {
    // Blocked twice over: the limit that frees last is the one that holds. (Otherwise a
    // queue held for hours by the daily cap would flip between "rpm" and "daily" with
    // every request token, and so would its log notice.)
    a.blocked_by = blocker;
    a.retry_at = retry_at;
  }
}

}  // namespace

const char* to_string(Blocker blocker) {
  switch (blocker) {
    case Blocker::none: return "none";
    case Blocker::rpm: return "rpm";
    case Blocker::daily: return "daily";
    case Blocker::parallel: return "parallel";
  }
  return "none";
}

TimePoint next_day_start(TimePoint t, Duration offset) {
  auto day = std::chrono::floor<std::chrono::days>(t - offset);
  return day + offset + one_day;
}

Duration day_offset(const AccountState& s, const LimiterSettings& settings) {
  if (s.day_start_offset) return *s.day_start_offset;
  return settings.day_starts_at.value_or(Duration::zero());
}

bool day_reset_assumed(const AccountState& s) { return !s.day_reset_reported; }

AccountState from_plan(std::int64_t rpm, std::int64_t parallel, std::int64_t daily) {
  AccountState s;
  s.rpm_limit = rpm;
  s.parallel_limit = parallel;
  s.day_limit = daily;
  return s;
}

void roll(AccountState& s, TimePoint now, const LimiterSettings& settings) {
  if (s.rpm_reset_at && now >= *s.rpm_reset_at) {
    // The window ended: its count is no longer known until the next response says.
    s.rpm_remaining.reset();
    s.rpm_reset_at.reset();
  }
  if (s.rpm_paused_until && now >= *s.rpm_paused_until) s.rpm_paused_until.reset();
  if (s.parallel_paused_until && now >= *s.parallel_paused_until) s.parallel_paused_until.reset();
  if (!s.day_reset_at) {
    s.day_reset_at = next_day_start(now, day_offset(s, settings));
    s.day_reset_reported = false;
  }
  if (now >= *s.day_reset_at) {
    s.day_used = 0;
    // The next end is assumed until a Reset-Day header says.
    s.day_reset_at = next_day_start(now, day_offset(s, settings));
    s.day_reset_reported = false;
    s.day_paused_until.reset();
  }
  if (s.day_paused_until && now >= *s.day_paused_until) s.day_paused_until.reset();
}

Allowance submit_allowance(const AccountState& s, std::int64_t in_flight, std::int64_t wanted,
                           TimePoint now, const LimiterSettings& settings) {
  auto a = rpm_tokens(s, wanted, now, settings, s.rpm_next_at, spacing(s, now, settings));
  if (paused(s.day_paused_until, now)) {
    narrow(a, 0, Blocker::daily, *s.day_paused_until);
  } else if (s.day_limit > 0) {
    narrow(a, s.day_limit - s.day_used, Blocker::daily,
           s.day_reset_at.value_or(next_day_start(now, day_offset(s, settings))));
  }
  // Parallel slots free up when jobs finish, which wakes the dispatcher; no time to give.
  if (paused(s.parallel_paused_until, now)) {
    narrow(a, 0, Blocker::parallel, *s.parallel_paused_until);
  } else if (s.parallel_limit > 0) {
    narrow(a, s.parallel_limit - in_flight, Blocker::parallel, TimePoint::max());
  }
  return a;
}

void take_submits(AccountState& s, std::int64_t count, TimePoint now,
                  const LimiterSettings& settings) {
  if (count <= 0) return;
  auto interval = spacing(s, now, settings);
  s.rpm_next_at = std::max(s.rpm_next_at, now) + interval * count;
  if (s.rpm_remaining) s.rpm_remaining = *s.rpm_remaining - count;
  s.day_used += count;
  s.day_submitted_at = now;
}

void note_claim(AccountState& s, bool held_by_capacity, TimePoint now) {
  if (held_by_capacity) {
    s.capacity_held_at = now;
  } else {
    s.capacity_held_at.reset();
  }
}

bool capacity_holds_dispatch(const AccountState& s, TimePoint now) { return held_recently(s, now); }

Allowance poll_allowance(const AccountState& s, std::int64_t wanted, TimePoint now,
                         const LimiterSettings& settings) {
  auto interval = spacing(s, now, settings);
  if (s.rpm_limit <= 0 && settings.polls_count_against_rpm) {
    Allowance a;
    a.count = wanted;
    return a;
  }
  // Polls run on their own clock at poll_share of the request rate (all of it while
  // capacity holds dispatch)...
  auto poll_interval = poll_spacing(s, now, settings, interval);
  Allowance a;
  a.count = std::min(wanted, paced_tokens(s.poll_next_at, poll_interval, 1, now));
  a.retry_at = std::max(now, s.poll_next_at);
  if (a.count == 0) return a;
  if (!settings.polls_count_against_rpm) return a;
  // ...and each also needs a request token.
  auto tokens = rpm_tokens(s, a.count, now, settings, s.rpm_next_at, interval);
  if (tokens.count < a.count) {
    a.count = tokens.count;
    a.retry_at = tokens.retry_at;
  }
  return a;
}

void take_polls(AccountState& s, std::int64_t count, TimePoint now,
                const LimiterSettings& settings) {
  if (count <= 0) return;
  auto interval = spacing(s, now, settings);
  auto poll_interval = poll_spacing(s, now, settings, interval);
  s.poll_next_at = std::max(s.poll_next_at, now) + poll_interval * count;
  if (!settings.polls_count_against_rpm) return;
  s.rpm_next_at = std::max(s.rpm_next_at, now) + interval * count;
  if (s.rpm_remaining) s.rpm_remaining = *s.rpm_remaining - count;
}

Allowance other_allowance(const AccountState& s, TimePoint now, const LimiterSettings& settings) {
  return rpm_tokens(s, 1, now, settings, s.rpm_next_at, spacing(s, now, settings));
}

void take_other(AccountState& s, TimePoint now, const LimiterSettings& settings) {
  auto interval = spacing(s, now, settings);
  s.rpm_next_at = std::max(s.rpm_next_at, now) + interval;
  if (s.rpm_remaining) s.rpm_remaining = *s.rpm_remaining - 1;
}

void observe(AccountState& s, const Observation& o, TimePoint now, const LimiterSettings& settings) {
  bool learned = false;
  if (o.rpm.limit) {
    s.rpm_limit = *o.rpm.limit;
    learned = true;
  }
  if (o.rpm.remaining && o.rpm.reset_at && *o.rpm.reset_at > now) {
    const bool new_window =
        !s.rpm_reset_at || *o.rpm.reset_at > *s.rpm_reset_at + same_window_tolerance;
    if (new_window) {
      s.rpm_reset_at = o.rpm.reset_at;
      s.rpm_remaining = o.rpm.remaining;
      // The window is known now: pace by it rather than by the fallback guess.
      if (*o.rpm.remaining > 0) {
        s.rpm_next_at = std::min(s.rpm_next_at, now + (*o.rpm.reset_at - now) / (*o.rpm.remaining + 1));
      }
    } else {
      // Same window: responses arrive out of order, so the lowest count is the truth...
      const std::int64_t ours = s.rpm_remaining.value_or(*o.rpm.remaining);
      s.rpm_remaining = std::min(ours, *o.rpm.remaining);
      // ...unless the API shows more room than the requests still on their way can
      // explain (those sent within one answer deadline, at the fastest pace the window
      // allows): then that is the API's own count, and it rules.
      if (s.rpm_limit > 0) {
        const Duration fastest = std::min<Duration>(spacing(s, now, settings), settings.fallback_window / s.rpm_limit);
        const std::int64_t on_the_way =
            fastest > Duration::zero() ? settings.answer_deadline / fastest + burst_of(s) : unlimited;
        if (*o.rpm.remaining > ours + on_the_way) s.rpm_remaining = *o.rpm.remaining;
      }
    }
    learned = true;
  }
  if (o.daily.limit) {
    s.day_limit = *o.daily.limit;
    learned = true;
  }
  const bool day_reset_reported = o.daily.reset_at && *o.daily.reset_at > now;
  if (day_reset_reported) {
    if (!s.day_reset_at || *o.daily.reset_at > *s.day_reset_at + same_window_tolerance) {
      s.day_used = 0;  // a new day as the API counts it
      s.day_paused_until.reset();
    }
    // Reset-Day rules over what was assumed or learned; its hour is the day's start.
    s.day_reset_at = o.daily.reset_at;
    s.day_reset_reported = true;
    s.day_start_offset = offset_of(*o.daily.reset_at);
  }
  if (o.daily.remaining && s.day_limit > 0) {
    // The API's count rules when it shows more room than the submits it may not have
    // counted yet can explain: those on the wire, and those answered while this answer
    // was on its way (they overlapped it, so at most parallel_limit; with no submit for
    // two answer deadlines, none). A count that fell by more than half is a new day;
    // without Reset-Day this answer is its first sign, so its time is when the day
    // begins, as late as that or later: the next day's assumed reset is never early. (A
    // smaller fall is submits the API never got: its count, not a new hour.)
    const auto api_used = std::max<std::int64_t>(0, s.day_limit - *o.daily.remaining);
    const auto excess = s.day_used - s.day_unanswered - api_used;
    const bool quiet = !s.day_submitted_at || now - *s.day_submitted_at > 2 * settings.answer_deadline;
    const bool proven = quiet ? excess > 0 : s.parallel_limit > 0 && excess > s.parallel_limit;
    if (proven) {
      const bool new_day = api_used * 2 <= s.day_used;
      s.day_used = api_used + s.day_unanswered;
      s.day_paused_until.reset();
      if (new_day && !day_reset_reported) {
        s.day_start_offset = offset_of(now);
        s.day_reset_at = next_day_start(now, *s.day_start_offset);
        s.day_reset_reported = false;
      }
    }
    // The API counts what it accepted; we also count what is still on the wire.
    s.day_used = std::max(s.day_used, s.day_limit - *o.daily.remaining);
    learned = true;
  }
  if (o.parallel.limit) {
    s.parallel_limit = *o.parallel.limit;
    learned = true;
  }
  if (learned) s.limits_source = "headers";
}

void on_rate_limited(AccountState& s, std::optional<Window> window, const Observation& o,
                     TimePoint now, const LimiterSettings& settings) {
  const auto which = window.value_or(Window::rpm);
  const WindowReport& report =
      which == Window::rpm ? o.rpm : which == Window::daily ? o.daily : o.parallel;
  TimePoint until;
  bool api_said = true;  // the API named the instant (Retry-After or the window's Reset)
  if (o.retry_after && *o.retry_after > now) {
    until = *o.retry_after;
  } else if (report.reset_at && *report.reset_at > now) {
    until = *report.reset_at;
  } else if (which == Window::daily) {
    until = s.day_reset_at.value_or(next_day_start(now, day_offset(s, settings)));
    api_said = false;
  } else {
    until = now + spacing(s, now, settings);
  }
  switch (which) {
    case Window::rpm:
      s.rpm_paused_until = std::max(s.rpm_paused_until.value_or(until), until);
      s.rpm_next_at = std::max(s.rpm_next_at, until);
      if (s.rpm_reset_at && *s.rpm_reset_at <= until) s.rpm_remaining = 0;
      break;
    case Window::daily:
      s.day_paused_until = until;
      if (s.day_limit > 0) s.day_used = std::max(s.day_used, s.day_limit);
      if (api_said) {
        // The API says when its day begins: that is today's reset and the day's hour.
        s.day_reset_at = until;
        s.day_reset_reported = true;
        s.day_start_offset = offset_of(until);
      }
      break;
    case Window::parallel:
      s.parallel_paused_until = until;
      break;
  }
}

void return_unaccepted(AccountState& s, std::int64_t count) {
  s.day_used = std::max<std::int64_t>(0, s.day_used - count);
}

}  // namespace klingq::ratelimit
