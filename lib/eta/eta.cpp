// The batch ETA; see eta.hpp.
#include "eta/eta.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>

namespace klingq::eta {
namespace {

constexpr double infinite = std::numeric_limits<double>::infinity();

// To the millisecond: an estimate is not finer, and rounding keeps 1200.0000000002 s at 1200.
TimePoint plus_seconds(TimePoint t, double seconds) {
  return t + std::chrono::round<std::chrono::milliseconds>(std::chrono::duration<double>(seconds));
}
double seconds_between(TimePoint a, TimePoint b) { return std::chrono::duration<double>(b - a).count(); }

std::tm utc(TimePoint t) {
  std::time_t s = Clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&s, &tm);
  return tm;
}

const char* label(Holder h, double window_seconds) {
  switch (h) {
    case Holder::rpm: return window_seconds == 60 ? "requests per minute" : "request window";
    case Holder::parallel: return "parallel limit";
    case Holder::daily: return "daily cap";
    default: return "";
  }
}

}  // namespace

const char* to_string(Holder holder) {
  switch (holder) {
    case Holder::done: return "done";
    case Holder::none: return "none";
    case Holder::rpm: return "rpm";
    case Holder::parallel: return "parallel";
    case Holder::daily: return "daily";
    case Holder::credits: return "credits";
    case Holder::budget: return "budget";
    case Holder::paused: return "paused";
    case Holder::halted: return "halted";
  }
  return "none";
}

std::string thousands(std::int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string when_text(TimePoint at, TimePoint now) {
  static const char* days[] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};
  auto a = utc(at);
  auto n = utc(now);
  char clock[16];
  std::snprintf(clock, sizeof clock, "%02d:%02d UTC", a.tm_hour, a.tm_min);
  auto day_a = std::chrono::floor<std::chrono::days>(at);
  auto day_n = std::chrono::floor<std::chrono::days>(now);
  auto days_ahead = (day_a - day_n).count();
  if (days_ahead <= 0) return clock;
  if (days_ahead <= 6) return std::string(days[a.tm_wday]) + " " + clock;
  char date[16];
  std::snprintf(date, sizeof date, "%04d-%02d-%02d ", a.tm_year + 1900, a.tm_mon + 1, a.tm_mday);
  (void)n;
  return date + std::string(clock);
}

Estimate estimate(const Inputs& in) {
  Estimate out;
  if (in.jobs_left <= 0 && in.in_flight <= 0) {
    out.held_by = Holder::done;
    out.done_at = in.now;
    out.text = "done";
    return out;
  }
  if (in.halted) {
    out.held_by = Holder::halted;
    out.text = "halted by the API (401): no finish time until the key is fixed";
    return out;
  }
  if (in.paused) {
    out.held_by = Holder::paused;
    out.text = "paused: no finish time until dispatch resumes";
    return out;
  }
  if (in.batch_paused && in.jobs_left > 0) {
    out.held_by = Holder::paused;
    out.text = "batch paused: no finish time until it resumes";
    return out;
  }

  // What the balance and the budget pay for, of the batch's own jobs.
  const auto& c = in.credits;
  if (c.cost_per_job > 0 && in.jobs_left > 0) {
    std::optional<std::int64_t> by_credits, by_budget;
    if (c.balance) by_credits = std::max<std::int64_t>(0, (*c.balance - c.reserve - c.cost_ahead) / c.cost_per_job);
    if (c.budget_left) by_budget = std::max<std::int64_t>(0, *c.budget_left / c.cost_per_job);
    const bool credits_short = by_credits && *by_credits < in.jobs_left;
    const bool budget_short = by_budget && *by_budget < in.jobs_left;
    if (budget_short && (!credits_short || *by_budget <= *by_credits)) {
      out.held_by = Holder::budget;
      out.jobs_payable = *by_budget;
      out.text = "budget runs out after " + thousands(*by_budget) + " more job" + (*by_budget == 1 ? "" : "s");
      return out;
    }
    if (credits_short) {
      out.held_by = Holder::credits;
      out.jobs_payable = *by_credits;
      out.text = "credits run out after " + thousands(*by_credits) + " more job" + (*by_credits == 1 ? "" : "s");
      return out;
    }
  }

  const auto& l = in.limits;
  const double generation = std::max(0.0, in.generation_seconds);
  const double rpm_rate = l.rpm > 0 ? static_cast<double>(l.rpm) / std::max(1.0, l.window_seconds) /
                                          std::max(1e-9, l.requests_per_job)
                                    : infinite;
  const double parallel_rate = l.parallel > 0 ? static_cast<double>(l.parallel) / std::max(1.0, generation) : infinite;
  const double rate = std::min(rpm_rate, parallel_rate);
  Holder pace = rate == infinite ? Holder::none : (rpm_rate <= parallel_rate ? Holder::rpm : Holder::parallel);

  double n = static_cast<double>(std::max<std::int64_t>(0, in.jobs_ahead) + std::max<std::int64_t>(0, in.jobs_left));
  TimePoint t = in.now;
  TimePoint day_end = l.day_ends;
  if (l.daily > 0) {
    if (day_end <= t) day_end += std::chrono::days(std::chrono::floor<std::chrono::days>(t - day_end).count() + 1);
  }
  double cap = l.daily > 0 ? static_cast<double>(std::max<std::int64_t>(0, l.daily - l.day_used)) : infinite;
  bool spilled = false;
  while (n > 0) {
    const double span = l.daily > 0 ? seconds_between(t, day_end) : infinite;
    const double by_rate = rate == infinite ? infinite : rate * span;
    if (n <= cap && n <= by_rate) {
      if (rate != infinite) t = plus_seconds(t, n / rate);
      n = 0;
      break;
    }
    // Today ends before the rest can go: what today allows goes, then the next day.
    n -= std::min(cap, by_rate);
    t = day_end;
    day_end += std::chrono::days(1);
    spilled = spilled || cap < by_rate;
    cap = static_cast<double>(l.daily);
    // Whole days at once, so that a million jobs at 100 a day is not 10,000 turns.
    const double per_day = std::min(cap, rate == infinite ? infinite : rate * 86400.0);
    if (n > per_day) {
      const double full = std::ceil(n / per_day) - 1;
      n -= full * per_day;
      const auto days = std::chrono::days(static_cast<long long>(full));
      t += days;
      day_end += days;
      spilled = spilled || cap < rate * 86400.0;
    }
  }
  out.held_by = spilled ? Holder::daily : pace;
  out.done_at = plus_seconds(t, generation);
  std::string when = "done " + when_text(*out.done_at, in.now);
  out.text = out.held_by == Holder::none ? when : std::string(label(out.held_by, l.window_seconds)) + ": " + when;
  return out;
}

std::vector<Estimate> estimate_batches(const Account& account, const std::vector<BatchQueue>& batches, TimePoint now) {
  std::vector<Estimate> out;
  out.reserve(batches.size());
  for (std::size_t i = 0; i < batches.size(); ++i) {
    const auto& b = batches[i];
    Inputs in;
    in.now = now;
    in.jobs_left = b.queued;
    in.in_flight = b.in_flight;
    for (std::size_t j = 0; j < batches.size(); ++j) {
      const auto& other = batches[j];
      if (j == i || other.paused || !other.priority || !b.priority || *other.priority < *b.priority) continue;
      in.jobs_ahead += other.queued;
      in.credits.cost_ahead += other.queued_cost;
    }
    in.limits = account.limits;
    in.credits.balance = account.balance;
    in.credits.reserve = account.reserve;
    in.credits.cost_per_job = b.queued ? b.queued_cost / b.queued : 0;
    in.credits.budget_left = b.budget_left;
    in.generation_seconds = account.generation_seconds;
    in.paused = account.paused;
    in.batch_paused = b.paused;
    in.halted = account.halted;
    out.push_back(estimate(in));
  }
  return out;
}

}  // namespace klingq::eta
