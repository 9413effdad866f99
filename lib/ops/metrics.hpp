// Every Prometheus metric klingqd exports, in one place: a Metrics object owns a
// prometheus-cpp Registry and hands out typed references, so call sites cannot misspell
// a name or a label value, and every labelled series exists (at 0) from the first
// scrape instead of appearing when its first event happens.
//
// Names and labels are an interface (dashboards/ and alerts use them):
// Database-wide gauges (marked [db] below) describe the shared database and account,
// not this process: only the elected instance (the oldest live one,
// klingq_metrics_publisher 1) exports their values, the others export 0, so that a
// Prometheus sum over every instance equals the database.
//
//   klingq_jobs{state}                            gauge   [db] rows per klingq.job_state
//   klingq_submissions_total{outcome}             counter submit attempts by result class
//   klingq_rate_limited_total{window}             counter 429s by the window that refused
//   klingq_limiter_limit{window}                  gauge   learned limit (0 = unlimited)
//   klingq_limiter_remaining{window}              gauge   tokens/slots left
//   klingq_limiter_reset_timestamp_seconds{window} gauge  Unix time the window resets
//   klingq_in_flight_jobs, klingq_parallel_limit  gauges  generating jobs vs the cap
//   klingq_daily_used, klingq_daily_limit         gauges  jobs started today vs the cap
//   klingq_credit_balance, klingq_credit_reserved gauges  account balance, held back
//   klingq_credit_spent_total                     counter credits the API charged for jobs this
//                                                         instance submitted (its creditCost, at accept)
//   klingq_credit_refunded_total                  counter credits the API gave back for those that
//                                                         failed; spent − refunded, summed over
//                                                         instances, is the API's net charge and
//                                                         `klingq status`'s "credits spent"
//   klingq_metrics_publisher                      gauge   1 on the instance exporting the [db] gauges
//   klingq_process_cpu_seconds_total, klingq_process_resident_memory_bytes,
//   klingq_process_open_fds, klingq_process_max_fds,
//   klingq_process_start_time_seconds             this process, as of the last heartbeat
//   klingq_low_balance                            gauge   1 below credits.low_balance_warning
//   klingq_api_request_duration_seconds{kind}     histogram one HTTP exchange with the API
//   klingq_insert_to_submit_seconds               histogram created_at → accepted by the API
//   klingq_submit_to_complete_seconds             histogram accepted → completed/failed
//   klingq_webhooks_total{result}                 counter webhook deliveries by result
//   klingq_polls_total                            counter status queries sent
//   klingq_instances                              gauge   live klingqd instances (heartbeats)
//   klingq_halted, klingq_paused                  gauges  1 when dispatch is stopped
//   klingq_stuck_jobs                             gauge   submitted past poll.horizon_seconds
//   klingq_downloads_total{result}                counter video download attempts (outputs.download)
//   klingq_download_bytes_total                   counter bytes of videos stored
//
// Thread safety: prometheus-cpp counters, gauges and histograms are atomic; any thread
// may update them while another serializes. The references stay valid as long as the
// Metrics object lives; Metrics is neither copyable nor movable for that reason.
#pragma once

#include "api/outcome.hpp"
#include "ratelimit/headers.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace klingq::ops {

// klingq.job_state, in the schema's order.
enum class JobState { queued, dispatching, submitted, completed, failed, cancelled };
// The error vocabulary's classes plus success, exactly as lib/api classifies an answer,
// so the dispatcher passes its outcome through without a mapping. Label values come
// from api::to_string.
using Outcome = api::OutcomeClass;
// The three limits of an account, as lib/ratelimit names them (ratelimit::to_string).
using Window = ratelimit::Window;
// What an API request was for.
enum class ApiCall { submit, poll, credits };
// How a webhook delivery ended.
enum class WebhookResult { accepted, rejected_signature, too_large, unknown_job, duplicate, bad_request };
// How a video download attempt ended: stored, failed and to be retried, failed for the
// last time, or cut short by shutdown (retried later, not counted as an attempt).
enum class DownloadOutcome { ok, retry, gave_up, interrupted };

// Series per labelled family: "last enumerator + 1". An enumerator added anywhere but
// last must update these; the accessors use std::array::at, so a miss throws
// std::out_of_range instead of touching memory.
inline constexpr std::size_t job_state_count = static_cast<std::size_t>(JobState::cancelled) + 1;
inline constexpr std::size_t outcome_count = static_cast<std::size_t>(Outcome::unauthorized) + 1;
inline constexpr std::size_t window_count = static_cast<std::size_t>(Window::parallel) + 1;
inline constexpr std::size_t api_call_count = static_cast<std::size_t>(ApiCall::credits) + 1;
inline constexpr std::size_t webhook_result_count =
    static_cast<std::size_t>(WebhookResult::bad_request) + 1;
inline constexpr std::size_t download_outcome_count =
    static_cast<std::size_t>(DownloadOutcome::interrupted) + 1;

// The label value of each enumerator ("queued", "submit", ...); Outcome and Window use
// api::to_string and ratelimit::to_string, found by argument-dependent lookup.
std::string_view to_string(JobState value);
std::string_view to_string(ApiCall value);
std::string_view to_string(WebhookResult value);
std::string_view to_string(DownloadOutcome value);

class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Rows in each state, set from a periodic count (not incremented by transitions, so
  // that several instances and manual SQL never make it drift).
  prometheus::Gauge& jobs(JobState state) { return *jobs_.at(index(state)); }
  // One per submit attempt, by how it ended.
  prometheus::Counter& submissions(Outcome outcome) { return *submissions_.at(index(outcome)); }
  // One per 429, by the window the API blamed.
  prometheus::Counter& rate_limited(Window window) { return *rate_limited_.at(index(window)); }

  // The limiter's view of each window.
  prometheus::Gauge& limit(Window window) { return *limit_.at(index(window)); }
  prometheus::Gauge& remaining(Window window) { return *remaining_.at(index(window)); }
  prometheus::Gauge& reset_timestamp(Window window) { return *reset_timestamp_.at(index(window)); }

  prometheus::Gauge& in_flight_jobs() { return *in_flight_jobs_; }
  prometheus::Gauge& parallel_limit() { return *parallel_limit_; }
  prometheus::Gauge& daily_used() { return *daily_used_; }
  prometheus::Gauge& daily_limit() { return *daily_limit_; }

  prometheus::Gauge& credit_balance() { return *credit_balance_; }
  prometheus::Gauge& credit_reserved() { return *credit_reserved_; }
  prometheus::Counter& credit_spent() { return *credit_spent_; }
  prometheus::Counter& credit_refunded() { return *credit_refunded_; }
  prometheus::Gauge& metrics_publisher() { return *metrics_publisher_; }
  prometheus::Gauge& low_balance() { return *low_balance_; }

  // Seconds of one request/response exchange with the API, including failed ones.
  prometheus::Histogram& api_request_duration(ApiCall kind) {
    return *api_request_duration_.at(index(kind));
  }
  // Queue latency: the row's created_at (or run_after when later) to the API's accept.
  prometheus::Histogram& insert_to_submit() { return *insert_to_submit_; }
  // Generation time as klingq sees it: accepted to a final state.
  prometheus::Histogram& submit_to_complete() { return *submit_to_complete_; }

  prometheus::Counter& webhooks(WebhookResult result) { return *webhooks_.at(index(result)); }
  prometheus::Counter& polls() { return *polls_; }
  prometheus::Gauge& instances() { return *instances_; }
  prometheus::Gauge& halted() { return *halted_; }
  prometheus::Gauge& paused() { return *paused_; }
  prometheus::Gauge& stuck_jobs() { return *stuck_jobs_; }
  prometheus::Counter& downloads(DownloadOutcome result) { return *downloads_.at(index(result)); }
  prometheus::Counter& download_bytes() { return *download_bytes_; }

  // Convenience for the 0/1 gauges and whole-number gauges fed from integers.
  static void set_flag(prometheus::Gauge& gauge, bool on) { gauge.Set(on ? 1.0 : 0.0); }

  // The whole registry in the Prometheus text exposition format 0.0.4.
  std::string serialize() const;
  // Reads CPU time, resident memory and open descriptors into klingq_process_*.
  void update_process();
  // For callers that add their own collectables or expose the registry otherwise.
  prometheus::Registry& registry() { return *registry_; }

  // Bucket boundaries, exposed for tests and documentation.
  static const prometheus::Histogram::BucketBoundaries& api_duration_buckets();
  static const prometheus::Histogram::BucketBoundaries& insert_to_submit_buckets();
  static const prometheus::Histogram::BucketBoundaries& submit_to_complete_buckets();

 private:
  template <typename Enum>
  static constexpr std::size_t index(Enum value) { return static_cast<std::size_t>(value); }

  // Owns every family and series; the pointers below point into it and are what the
  // accessors return, so no lookup happens on the hot path.
  std::shared_ptr<prometheus::Registry> registry_;
  std::array<prometheus::Gauge*, job_state_count> jobs_{};
  std::array<prometheus::Counter*, outcome_count> submissions_{};
  std::array<prometheus::Counter*, window_count> rate_limited_{};
  std::array<prometheus::Gauge*, window_count> limit_{};
  std::array<prometheus::Gauge*, window_count> remaining_{};
  std::array<prometheus::Gauge*, window_count> reset_timestamp_{};
  prometheus::Gauge* in_flight_jobs_ = nullptr;
  prometheus::Gauge* parallel_limit_ = nullptr;
  prometheus::Gauge* daily_used_ = nullptr;
  prometheus::Gauge* daily_limit_ = nullptr;
  prometheus::Gauge* credit_balance_ = nullptr;
  prometheus::Gauge* credit_reserved_ = nullptr;
  prometheus::Counter* credit_spent_ = nullptr;
  prometheus::Counter* credit_refunded_ = nullptr;
  prometheus::Gauge* metrics_publisher_ = nullptr;
  prometheus::Gauge* low_balance_ = nullptr;
  std::array<prometheus::Histogram*, api_call_count> api_request_duration_{};
  prometheus::Histogram* insert_to_submit_ = nullptr;
  prometheus::Histogram* submit_to_complete_ = nullptr;
  std::array<prometheus::Counter*, webhook_result_count> webhooks_{};
  prometheus::Counter* polls_ = nullptr;
  prometheus::Gauge* instances_ = nullptr;
  prometheus::Gauge* halted_ = nullptr;
  prometheus::Gauge* paused_ = nullptr;
  prometheus::Gauge* stuck_jobs_ = nullptr;
  std::array<prometheus::Counter*, download_outcome_count> downloads_{};
  prometheus::Counter* download_bytes_ = nullptr;
  prometheus::Counter* process_cpu_ = nullptr;
  prometheus::Gauge* process_resident_ = nullptr;
  prometheus::Gauge* process_open_fds_ = nullptr;
  prometheus::Gauge* process_max_fds_ = nullptr;
};

}  // namespace klingq::ops
