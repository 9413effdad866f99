// Registration of klingqd's metrics; see metrics.hpp for the names and meanings.
#include "ops/metrics.hpp"

#include "util/version.hpp"

#include <prometheus/text_serializer.h>

#include <sys/resource.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace klingq::ops {
namespace {

using prometheus::Labels;

// Set during static initialisation, before main: the process's start, to the second.
const double process_started = static_cast<double>(std::time(nullptr));

std::string label(std::string_view value) { return std::string(value); }

// Registers one series per enumerator of a labelled family, in the enum's order, so
// that the array index is the enumerator's value.
template <typename Enum, typename Metric, std::size_t N, typename... Args>
void add_all(prometheus::Family<Metric>& family, const char* label_name,
             std::array<Metric*, N>& into, const Args&... args) {
  for (std::size_t i = 0; i < N; ++i) {
    into[i] = &family.Add(Labels{{label_name, label(to_string(static_cast<Enum>(i)))}}, args...);
  }
}

}  // namespace

std::string_view to_string(JobState value) {
  switch (value) {
    case JobState::queued: return "queued";
    case JobState::dispatching: return "dispatching";
    case JobState::submitted: return "submitted";
    case JobState::completed: return "completed";
    case JobState::failed: return "failed";
    case JobState::cancelled: return "cancelled";
  }
  return "unknown";
}

std::string_view to_string(ApiCall value) {
  switch (value) {
    case ApiCall::submit: return "submit";
    case ApiCall::poll: return "poll";
    case ApiCall::credits: return "credits";
  }
  return "unknown";
}

std::string_view to_string(WebhookResult value) {
  switch (value) {
    case WebhookResult::accepted: return "accepted";
    case WebhookResult::rejected_signature: return "rejected_signature";
    case WebhookResult::too_large: return "too_large";
    case WebhookResult::unknown_job: return "unknown_job";
    case WebhookResult::duplicate: return "duplicate";
    case WebhookResult::bad_request: return "bad_request";
  }
  return "unknown";
}

std::string_view to_string(DownloadOutcome value) {
  switch (value) {
    case DownloadOutcome::ok: return "ok";
    case DownloadOutcome::retry: return "retry";
    case DownloadOutcome::gave_up: return "gave_up";
    case DownloadOutcome::interrupted: return "interrupted";
  }
  return "unknown";
}

// An API exchange is tens of milliseconds when healthy and up to the request timeout
// (30 s by default) when not.
const prometheus::Histogram::BucketBoundaries& Metrics::api_duration_buckets() {
  static const prometheus::Histogram::BucketBoundaries buckets{
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  return buckets;
}

// Queue latency spans a second (idle queue) to days (a bulk load behind a daily limit).
const prometheus::Histogram::BucketBoundaries& Metrics::insert_to_submit_buckets() {
  static const prometheus::Histogram::BucketBoundaries buckets{
      1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 43200, 86400, 259200};
  return buckets;
}

// A Kling generation takes minutes; poll.horizon_seconds (2 h) marks a job stuck.
const prometheus::Histogram::BucketBoundaries& Metrics::submit_to_complete_buckets() {
  static const prometheus::Histogram::BucketBoundaries buckets{
      30, 60, 120, 180, 240, 300, 450, 600, 900, 1200, 1800, 3600, 7200};
  return buckets;
}

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& registry = *registry_;
  auto gauge = [&](const char* name, const char* help) -> prometheus::Gauge& {
    return prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
  };
  auto counter = [&](const char* name, const char* help) -> prometheus::Counter& {
    return prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
  };

  // klingq_build_info{version="..."} 1: which build each instance runs.
  prometheus::BuildGauge()
      .Name("klingq_build_info")
      .Help("Always 1; the version label is this klingqd's version.")
      .Register(registry)
      .Add({{"version", version()}})
      .Set(1);

  add_all<JobState>(prometheus::BuildGauge()
                        .Name("klingq_jobs")
                        .Help("Jobs in klingq.jobs by state, from the last periodic count.")
                        .Register(registry),
                    "state", jobs_);
  add_all<Outcome>(prometheus::BuildCounter()
                       .Name("klingq_submissions_total")
                       .Help("Submit attempts by outcome class.")
                       .Register(registry),
                   "outcome", submissions_);
  add_all<Window>(prometheus::BuildCounter()
                      .Name("klingq_rate_limited_total")
                      .Help("HTTP 429 answers from the API by the limit window that refused.")
                      .Register(registry),
                  "window", rate_limited_);
  add_all<Window>(prometheus::BuildGauge()
                      .Name("klingq_limiter_limit")
                      .Help("The limit of each window as last learned; 0 means unlimited.")
                      .Register(registry),
                  "window", limit_);
  add_all<Window>(prometheus::BuildGauge()
                      .Name("klingq_limiter_remaining")
                      .Help("Requests or jobs left in each window.")
                      .Register(registry),
                  "window", remaining_);
  add_all<Window>(prometheus::BuildGauge()
                      .Name("klingq_limiter_reset_timestamp_seconds")
                      .Help("Unix time at which each window resets.")
                      .Register(registry),
                  "window", reset_timestamp_);

  in_flight_jobs_ = &gauge("klingq_in_flight_jobs", "Jobs submitted and still generating.");
  parallel_limit_ = &gauge("klingq_parallel_limit", "Jobs the account may generate at once.");
  daily_used_ = &gauge("klingq_daily_used", "Jobs started in the current daily window.");
  daily_limit_ = &gauge("klingq_daily_limit", "Jobs the account may start per day; 0 means unlimited.");
  credit_balance_ = &gauge("klingq_credit_balance", "Account credit balance as last queried.");
  credit_reserved_ = &gauge("klingq_credit_reserved",
                            "Credits held for jobs submitted but not yet charged.");
  credit_spent_ = &counter("klingq_credit_spent_total",
                           "Credits the API charged (creditCost at accept) for jobs this instance submitted.");
  credit_refunded_ = &counter("klingq_credit_refunded_total",
                              "Credits the API refunded for failed jobs; spent minus refunded is the net charge.");
  metrics_publisher_ = &gauge("klingq_metrics_publisher",
                              "1 on the one instance (the oldest live) that exports the database-wide gauges.");
  low_balance_ = &gauge("klingq_low_balance",
                        "1 when the balance is below credits.low_balance_warning, else 0.");

  add_all<ApiCall>(prometheus::BuildHistogram()
                       .Name("klingq_api_request_duration_seconds")
                       .Help("Duration of one HTTP exchange with the API, by request kind.")
                       .Register(registry),
                   "kind", api_request_duration_, api_duration_buckets());
  insert_to_submit_ = &prometheus::BuildHistogram()
                           .Name("klingq_insert_to_submit_seconds")
                           .Help("Time from a job becoming runnable to the API accepting it.")
                           .Register(registry)
                           .Add({}, insert_to_submit_buckets());
  submit_to_complete_ = &prometheus::BuildHistogram()
                             .Name("klingq_submit_to_complete_seconds")
                             .Help("Time from the API accepting a job to its final state.")
                             .Register(registry)
                             .Add({}, submit_to_complete_buckets());

  add_all<WebhookResult>(prometheus::BuildCounter()
                             .Name("klingq_webhooks_total")
                             .Help("Webhook deliveries by result.")
                             .Register(registry),
                         "result", webhooks_);
  polls_ = &counter("klingq_polls_total", "Job status queries sent to the API.");
  instances_ = &gauge("klingq_instances", "Live klingqd instances according to heartbeats.");
  halted_ = &gauge("klingq_halted", "1 when dispatch is halted by a 401 from the API or a 407 from the proxy, else 0.");
  paused_ = &gauge("klingq_paused", "1 when dispatch is paused in the database, else 0.");
  stuck_jobs_ = &gauge("klingq_stuck_jobs",
                       "Submitted jobs unresolved past poll.horizon_seconds.");
  add_all<DownloadOutcome>(prometheus::BuildCounter()
                               .Name("klingq_downloads_total")
                               .Help("Video download attempts (outputs.download) by result.")
                               .Register(registry),
                           "result", downloads_);
  download_bytes_ = &counter("klingq_download_bytes_total", "Bytes of videos downloaded and stored.");

  process_cpu_ = &counter("klingq_process_cpu_seconds_total", "User and system CPU time of klingqd in seconds.");
  process_resident_ = &gauge("klingq_process_resident_memory_bytes", "Resident memory of klingqd in bytes.");
  process_open_fds_ = &gauge("klingq_process_open_fds", "File descriptors klingqd has open.");
  process_max_fds_ = &gauge("klingq_process_max_fds", "The most file descriptors klingqd may open (RLIMIT_NOFILE).");
  gauge("klingq_process_start_time_seconds", "Unix time at which klingqd started.").Set(process_started);
  update_process();
}

Metrics::~Metrics() = default;

std::string Metrics::serialize() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

// The conventional process metrics of Prometheus's client libraries, with klingq's
// prefix like every other name here. Set from the kernel by update_process() (the
// heartbeat calls it) rather than at each scrape, so that a scrape only reads.
void Metrics::update_process() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0) {
    const double cpu = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                       static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    if (cpu > process_cpu_->Value()) process_cpu_->Increment(cpu - process_cpu_->Value());
  }
  if (std::ifstream statm("/proc/self/statm"); statm) {
    long long size = 0, resident = 0;
    if (statm >> size >> resident) {
      process_resident_->Set(static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)));
    }
  }
  std::error_code error;
  std::size_t open = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", error), end; !error && it != end; it.increment(error)) {
    ++open;
  }
  // The iterator's own descriptor was counted while it was open.
  if (!error) process_open_fds_->Set(static_cast<double>(open > 0 ? open - 1 : 0));
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0) process_max_fds_->Set(static_cast<double>(files.rlim_cur));
}

}  // namespace klingq::ops
