// The simulated account: see state.hpp.
#include "sim/state.hpp"

#include <chrono>
#include <cmath>
#include <stdexcept>

namespace klingq::sim {
namespace {

constexpr auto idempotency_lifetime = std::chrono::hours(24);
constexpr std::int64_t seconds_per_day = 86400;

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  auto q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

Duration seconds(double s) {
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
}

// The provider's days are numbered from the one that began at the epoch plus its
// offset (Settings::day_start_seconds after 00:00 UTC).
std::int64_t day_of(TimePoint t, std::int64_t offset) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  return floor_div(s - offset, seconds_per_day);
}

TimePoint start_of_day(std::int64_t day, std::int64_t offset) {
  return TimePoint(std::chrono::seconds(day * seconds_per_day + offset));
}

void check_rate(double rate, const char* name) {
  if (!(rate >= 0.0 && rate <= 1.0)) {
    throw std::invalid_argument(std::string(name) + " must be between 0 and 1");
  }
}

// The few ways a real generation fails; which one is part of the seeded decision.
constexpr const char* failure_messages[] = {
    "Generation failed: the prompt was rejected by content moderation",
    "Generation failed: the model timed out",
    "Generation failed: internal rendering error",
};

}  // namespace

const char* to_string(Window window) {
  switch (window) {
    case Window::rpm: return "rpm";
    case Window::parallel: return "parallel";
    case Window::daily: return "daily";
  }
  return "rpm";
}

const char* to_string(JobStatus status) {
  switch (status) {
    case JobStatus::processing: return "processing";
    case JobStatus::completed: return "completed";
    case JobStatus::failed: return "failed";
  }
  return "processing";
}

const char* to_string(Fault fault) {
  switch (fault) {
    case Fault::none: return "none";
    case Fault::server_error: return "500";
    case Fault::bad_gateway: return "502";
    case Fault::unavailable: return "503";
    case Fault::slow: return "slow";
    case Fault::reset_before: return "reset_before";
    case Fault::reset_after: return "reset_after";
    case Fault::malformed: return "malformed";
    case Fault::bare_429: return "429_bare";
  }
  return "none";
}

PlanLimits Settings::limits() const {
  auto result = plan_limits(plan);
  if (rpm) result.rpm = *rpm;
  if (parallel) result.parallel = *parallel;
  if (daily) result.daily = *daily;
  return result;
}

void Settings::validate() const {
  auto non_negative = [](const std::optional<std::int64_t>& v, const char* name) {
    if (v && *v < 0) throw std::invalid_argument(std::string(name) + " must be >= 0 (0 = unlimited)");
  };
  non_negative(rpm, "rpm");
  non_negative(parallel, "parallel");
  non_negative(daily, "daily");
  if (credits < 0) throw std::invalid_argument("credits must be >= 0");
  if (!(window_seconds > 0)) throw std::invalid_argument("window-seconds must be > 0");
  if (day_start_seconds < 0 || day_start_seconds >= seconds_per_day) {
    throw std::invalid_argument("day-starts-at must be a time of day");
  }
  if (!(gen_min_seconds >= 0) || !(gen_max_seconds >= gen_min_seconds)) {
    throw std::invalid_argument("gen-seconds must be MIN:MAX with 0 <= MIN <= MAX");
  }
  check_rate(fail_rate, "fail-rate");
  check_rate(faults.server_error, "fault-500");
  check_rate(faults.unavailable, "fault-503");
  check_rate(faults.slow, "fault-slow");
  check_rate(faults.reset_before, "fault-reset-before");
  check_rate(faults.reset_after, "fault-reset-after");
  check_rate(faults.malformed, "fault-malformed");
  check_rate(faults.bare_429, "fault-429-bare");
  double sum = faults.server_error + faults.unavailable + faults.slow + faults.reset_before +
               faults.reset_after + faults.malformed + faults.bare_429;
  if (sum > 1.0 + 1e-9) throw std::invalid_argument("fault-* rates must add up to at most 1");
  if (faults.slow_ms < 0) throw std::invalid_argument("slow-ms must be >= 0");
  check_rate(webhook_faults.drop, "webhook-drop");
  check_rate(webhook_faults.duplicate, "webhook-duplicate");
  check_rate(webhook_faults.delay, "webhook-delay");
  check_rate(webhook_faults.reorder, "webhook-reorder");
  if (webhook_faults.delay_ms < 0) throw std::invalid_argument("webhook-delay-ms must be >= 0");
  // Each video is built in memory per GET: a simulator, not a CDN.
  if (outputs.bytes < 0 || outputs.bytes > (std::int64_t{256} << 20)) {
    throw std::invalid_argument("output-bytes must be between 0 and 268435456");
  }
  if (outputs.redirects < 0 || outputs.redirects > 20) {
    throw std::invalid_argument("output-redirects must be between 0 and 20");
  }
  check_rate(outputs.server_error, "output-fault-500");
  check_rate(outputs.truncate, "output-fault-truncate");
  if (outputs.server_error + outputs.truncate > 1.0 + 1e-9) {
    throw std::invalid_argument("output-fault-* rates must add up to at most 1");
  }
}

std::string output_content(std::string_view job_id, std::size_t size) {
  // FNV-1a of the id seeds a xorshift64* stream: cheap, deterministic, and no two
  // jobs' videos share a prefix.
  std::uint64_t x = 14695981039346656037ull;
  for (unsigned char c : job_id) x = (x ^ c) * 1099511628211ull;
  if (x == 0) x = 1;
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; i += 8) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    std::uint64_t word = x * 2685821657736338717ull;
    for (std::size_t b = 0; b < 8 && i + b < size; ++b) out[i + b] = static_cast<char>(word >> (8 * b));
  }
  return out;
}

Account::Account(Settings settings, TimePoint now) { reset(std::move(settings), now); }

void Account::configure(Settings settings) {
  settings.validate();
  settings_ = std::move(settings);
}

void Account::reset(Settings settings, TimePoint now) {
  settings.validate();
  settings_ = std::move(settings);
  window_origin_ = now;
  window_index_ = 0;
  window_used_ = 0;
  day_index_ = day_of(now, settings_.day_start_seconds);
  day_used_ = 0;
  balance_ = settings_.credits;
  jobs_.clear();
  job_order_.clear();
  processing_.clear();
  finished_.clear();
  completed_ = 0;
  failed_ = 0;
  keys_.clear();
  charges_by_key_.clear();
  stats_ = Stats{};
  // Separate streams so that, say, turning a fault rate on does not change which jobs fail.
  job_random_.seed(settings_.seed * 4 + 0);
  fault_random_.seed(settings_.seed * 4 + 1);
  webhook_random_.seed(settings_.seed * 4 + 2);
  id_random_.seed(settings_.seed * 4 + 3);
  output_random_.seed(settings_.seed ^ 0x9e3779b97f4a7c15ull);
}

void Account::roll_windows(TimePoint now) {
  auto length = seconds(settings_.window_seconds);
  auto elapsed = (now - window_origin_).count();
  auto index = floor_div(elapsed, std::max<Duration::rep>(length.count(), 1));
  if (index != window_index_) {
    window_index_ = index;
    window_used_ = 0;
  }
  auto day = day_of(now, settings_.day_start_seconds);
  if (day != day_index_) {
    day_index_ = day;
    day_used_ = 0;
  }
}

void Account::advance(TimePoint now) {
  while (!processing_.empty() && processing_.begin()->first <= now) {
    auto node = processing_.extract(processing_.begin());
    auto& job = jobs_.at(node.value().second);
    job.completed_at = job.due_at;
    if (job.will_fail) {
      job.status = JobStatus::failed;
      ++failed_;
      balance_ += job.credit_cost;
      stats_.credits_refunded += job.credit_cost;
      stats_.credits_spent -= job.credit_cost;
    } else {
      job.status = JobStatus::completed;
      ++completed_;
      const bool served_here = settings_.outputs.bytes > 0 && !output_origin_.empty();
      job.url = (served_here ? output_origin_ : std::string("https://cdn.doitong.com")) + "/outputs/" + job.id + ".mp4";
    }
    finished_.push_back(job.id);
  }
}

std::vector<const Job*> Account::take_finished() {
  std::vector<const Job*> out;
  out.reserve(finished_.size());
  for (const auto& id : finished_) out.push_back(&jobs_.at(id));
  finished_.clear();
  return out;
}

std::optional<TimePoint> Account::next_due() const {
  if (processing_.empty()) return std::nullopt;
  return processing_.begin()->first;
}

ApiError Account::rate_limited(Window window, std::int64_t limit, TimePoint retry_at) const {
  ApiError e;
  e.status = 429;
  e.code = "RATE_LIMITED";
  e.window = window;
  e.retry_at = retry_at;
  switch (window) {
    case Window::rpm:
      e.message = "Rate limit exceeded: " + std::to_string(limit) + " requests per " +
                  std::to_string(static_cast<long long>(std::llround(settings_.window_seconds))) +
                  " s window (rpm)";
      break;
    case Window::parallel:
      e.message = "Rate limit exceeded: " + std::to_string(limit) +
                  " parallel jobs already processing (parallel)";
      break;
    case Window::daily:
      e.message = "Rate limit exceeded: " + std::to_string(limit) + " jobs per day (daily)";
      break;
  }
  e.extensions["window"] = to_string(window);
  e.extensions["limit"] = limit;
  return e;
}

std::optional<ApiError> Account::admit_request(TimePoint now) {
  advance(now);
  roll_windows(now);
  auto limit = settings_.limits().rpm;
  if (limit > 0 && window_used_ >= limit) {
    ++stats_.rate_limited_rpm;
    return rate_limited(Window::rpm, limit, usage(now).window_reset);
  }
  ++window_used_;
  stats_.max_window_requests_seen = std::max(stats_.max_window_requests_seen, window_used_);
  return std::nullopt;
}

SubmitOutcome Account::submit(TimePoint now, const std::string* key, GenerateParams params) {
  advance(now);
  roll_windows(now);
  auto fingerprint = key ? params.fingerprint() : std::string();
  if (key) {
    auto found = keys_.find(*key);
    if (found != keys_.end() && now - found->second.first_seen >= idempotency_lifetime) {
      keys_.erase(found);
      found = keys_.end();
    }
    if (found != keys_.end()) {
      if (found->second.fingerprint == fingerprint) {
        ++stats_.idempotent_replays;
        return Submitted{&jobs_.at(found->second.job_id), true};
      }
      ++stats_.conflicts;
      ApiError e;
      e.status = 409;
      e.code = "CONFLICT";
      e.message = "Idempotency-Key \"" + *key +
                  "\" was already used with a different request body";
      e.extensions["idempotencyKey"] = *key;
      e.extensions["jobId"] = found->second.job_id;
      return e;
    }
  }
  auto limits = settings_.limits();
  if (limits.daily > 0 && day_used_ >= limits.daily) {
    ++stats_.rate_limited_daily;
    return rate_limited(Window::daily, limits.daily, start_of_day(day_index_ + 1, settings_.day_start_seconds));
  }
  if (limits.parallel > 0 && static_cast<std::int64_t>(processing_.size()) >= limits.parallel) {
    ++stats_.rate_limited_parallel;
    return rate_limited(Window::parallel, limits.parallel, processing_.begin()->first);
  }
  auto cost = credit_cost(params, settings_.cost);
  if (balance_ < cost) {
    ++stats_.payment_required;
    ApiError e;
    e.status = 402;
    e.code = "INSUFFICIENT_CREDITS";
    e.message = "Insufficient credits for this operation";
    e.extensions["creditsRequired"] = cost;
    e.extensions["creditsAvailable"] = balance_;
    return e;
  }

  balance_ -= cost;
  stats_.credits_spent += cost;
  ++stats_.accepted;
  ++day_used_;
  Job job;
  job.id = new_job_id();
  job.params = std::move(params);
  job.credit_cost = cost;
  job.created_at = now;
  std::uniform_real_distribution<double> generation(settings_.gen_min_seconds,
                                                    std::nextafter(settings_.gen_max_seconds, 1e300));
  job.due_at = now + seconds(std::min(generation(job_random_), settings_.gen_max_seconds));
  job.will_fail = std::uniform_real_distribution<double>(0, 1)(job_random_) < settings_.fail_rate;
  if (job.will_fail) {
    job.error = failure_messages[std::uniform_int_distribution<std::size_t>(
        0, std::size(failure_messages) - 1)(job_random_)];
  }
  if (key) {
    job.idempotency_key = *key;
    keys_[*key] = KeyEntry{job.id, std::move(fingerprint), now};
    if (++charges_by_key_[*key] > 1) ++stats_.duplicate_charges;
  }
  processing_.emplace(job.due_at, job.id);
  stats_.max_parallel_seen =
      std::max(stats_.max_parallel_seen, static_cast<std::int64_t>(processing_.size()));
  job_order_.push_back(job.id);
  auto id = job.id;
  auto& stored = jobs_.emplace(id, std::move(job)).first->second;
  // A zero generation time still ends in a later advance(), never inside this call, so
  // the caller always sees the job as the API returns it: processing.
  return Submitted{&stored, false};
}

std::string Account::new_job_id() {
  static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  for (;;) {
    std::string id;
    auto bits = id_random_();
    for (int i = 0; i < 12; ++i) {
      id += alphabet[bits % 36];
      bits /= 36;
    }
    if (!jobs_.contains(id)) return id;
  }
}

const Job* Account::find_job(const std::string& id) const {
  auto found = jobs_.find(id);
  return found == jobs_.end() ? nullptr : &found->second;
}

Usage Account::usage(TimePoint now) {
  roll_windows(now);
  Usage u;
  u.limits = settings_.limits();
  u.window_used = window_used_;
  u.window_reset = window_origin_ + seconds(settings_.window_seconds) * (window_index_ + 1);
  u.day_used = day_used_;
  u.day_reset = start_of_day(day_index_ + 1, settings_.day_start_seconds);
  u.processing = static_cast<std::int64_t>(processing_.size());
  if (!processing_.empty()) u.next_slot = processing_.begin()->first;
  return u;
}

Fault Account::draw_fault() {
  const auto& f = settings_.faults;
  double u = std::uniform_real_distribution<double>(0, 1)(fault_random_);
  Fault fault = Fault::none;
  double edge = 0;
  auto hit = [&](double rate) { return u < (edge += rate); };
  if (hit(f.server_error)) {
    fault = Fault::server_error;
  } else if (hit(f.unavailable)) {
    fault = (fault_random_() & 1) ? Fault::unavailable : Fault::bad_gateway;
  } else if (hit(f.reset_before)) {
    fault = Fault::reset_before;
  } else if (hit(f.reset_after)) {
    fault = Fault::reset_after;
  } else if (hit(f.malformed)) {
    fault = Fault::malformed;
  } else if (hit(f.bare_429)) {
    fault = Fault::bare_429;
  } else if (hit(f.slow)) {
    fault = Fault::slow;
  }
  if (fault != Fault::none) ++stats_.faults[to_string(fault)];
  return fault;
}

WebhookFaults Account::draw_webhook_faults() {
  const auto& f = settings_.webhook_faults;
  std::uniform_real_distribution<double> unit(0, 1);
  WebhookFaults out;
  // Always four draws, so that the stream does not depend on the rates.
  double drop = unit(webhook_random_), duplicate = unit(webhook_random_),
         delay = unit(webhook_random_), reorder = unit(webhook_random_);
  out.drop = drop < f.drop;
  if (out.drop) {
    ++stats_.webhooks_dropped;
    return out;
  }
  out.duplicate = duplicate < f.duplicate;
  out.delay = delay < f.delay;
  out.reorder = reorder < f.reorder;
  stats_.webhooks_duplicated += out.duplicate;
  stats_.webhooks_delayed += out.delay;
  stats_.webhooks_reordered += out.reorder;
  return out;
}

OutputFault Account::draw_output_fault() {
  const auto& o = settings_.outputs;
  double u = std::uniform_real_distribution<double>(0, 1)(output_random_);
  if (u < o.server_error) return OutputFault::server_error;
  if (u < o.server_error + o.truncate) return OutputFault::truncate;
  return OutputFault::none;
}

std::int64_t Account::jobs_with(JobStatus status) const {
  switch (status) {
    case JobStatus::processing: return static_cast<std::int64_t>(processing_.size());
    case JobStatus::completed: return completed_;
    case JobStatus::failed: return failed_;
  }
  return 0;
}

}  // namespace klingq::sim
