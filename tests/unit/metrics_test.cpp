// The Metrics registry: names, labels and values as they appear in the Prometheus text
// format, which is what dashboards and alerts depend on.
#include "ops/metrics.hpp"
#include "util/version.hpp"

#include <doctest/doctest.h>

#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace klingq::ops;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

bool has_line(const std::string& text, const std::string& line) {
  for (const auto& candidate : lines_of(text)) {
    if (candidate == line) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("metrics: counters, gauges and labels appear as exact text-format lines") {
  Metrics metrics;
  metrics.submissions(Outcome::accepted).Increment();
  metrics.submissions(Outcome::accepted).Increment(2);
  metrics.submissions(Outcome::rate_limited).Increment();
  metrics.rate_limited(Window::rpm).Increment();
  metrics.webhooks(WebhookResult::rejected_signature).Increment();
  metrics.polls().Increment(7);
  metrics.credit_spent().Increment(500);
  metrics.jobs(JobState::queued).Set(1200);
  metrics.jobs(JobState::submitted).Set(5);
  metrics.limit(Window::parallel).Set(5);
  metrics.remaining(Window::rpm).Set(17);
  metrics.reset_timestamp(Window::daily).Set(1767225600);
  metrics.credit_balance().Set(12345.5);
  Metrics::set_flag(metrics.low_balance(), true);
  Metrics::set_flag(metrics.halted(), false);
  metrics.instances().Set(2);

  auto text = metrics.serialize();
  CHECK(has_line(text, "# TYPE klingq_submissions_total counter"));
  CHECK(has_line(text, R"(klingq_submissions_total{outcome="accepted"} 3)"));
  CHECK(has_line(text, R"(klingq_submissions_total{outcome="rate_limited"} 1)"));
  CHECK(has_line(text, R"(klingq_submissions_total{outcome="no_credit"} 0)"));
  CHECK(has_line(text, R"(klingq_rate_limited_total{window="rpm"} 1)"));
  CHECK(has_line(text, R"(klingq_rate_limited_total{window="daily"} 0)"));
  CHECK(has_line(text, R"(klingq_webhooks_total{result="rejected_signature"} 1)"));
  CHECK(has_line(text, "klingq_polls_total 7"));
  CHECK(has_line(text, "klingq_credit_spent_total 500"));
  CHECK(has_line(text, "# TYPE klingq_jobs gauge"));
  CHECK(has_line(text, R"(klingq_jobs{state="queued"} 1200)"));
  CHECK(has_line(text, R"(klingq_jobs{state="submitted"} 5)"));
  CHECK(has_line(text, R"(klingq_jobs{state="cancelled"} 0)"));
  CHECK(has_line(text, R"(klingq_limiter_limit{window="parallel"} 5)"));
  CHECK(has_line(text, R"(klingq_limiter_remaining{window="rpm"} 17)"));
  CHECK(has_line(text, R"(klingq_limiter_reset_timestamp_seconds{window="daily"} 1767225600)"));
  CHECK(has_line(text, "klingq_credit_balance 12345.5"));
  CHECK(has_line(text, "klingq_low_balance 1"));
  CHECK(has_line(text, "klingq_halted 0"));
  CHECK(has_line(text, "klingq_instances 2"));
}

TEST_CASE("metrics: histograms expose buckets, sum and count per kind") {
  Metrics metrics;
  metrics.api_request_duration(ApiCall::poll).Observe(0.03);
  metrics.api_request_duration(ApiCall::poll).Observe(2.0);
  metrics.insert_to_submit().Observe(42);
  metrics.submit_to_complete().Observe(200);

  auto text = metrics.serialize();
  CHECK(has_line(text, "# TYPE klingq_api_request_duration_seconds histogram"));
  CHECK(has_line(text, R"(klingq_api_request_duration_seconds_count{kind="poll"} 2)"));
  CHECK(has_line(text, R"(klingq_api_request_duration_seconds_sum{kind="poll"} 2.03)"));
  CHECK(has_line(text, R"(klingq_api_request_duration_seconds_bucket{kind="poll",le="0.025"} 0)"));
  CHECK(has_line(text, R"(klingq_api_request_duration_seconds_bucket{kind="poll",le="0.05"} 1)"));
  CHECK(has_line(text, R"(klingq_api_request_duration_seconds_bucket{kind="poll",le="2.5"} 2)"));
  CHECK(has_line(text, R"(klingq_api_request_duration_seconds_bucket{kind="poll",le="+Inf"} 2)"));
  CHECK(has_line(text, R"(klingq_api_request_duration_seconds_count{kind="submit"} 0)"));
  CHECK(has_line(text, R"(klingq_api_request_duration_seconds_count{kind="credits"} 0)"));
  CHECK(has_line(text, "klingq_insert_to_submit_seconds_count 1"));
  CHECK(has_line(text, "klingq_insert_to_submit_seconds_sum 42"));
  CHECK(has_line(text, R"(klingq_insert_to_submit_seconds_bucket{le="60"} 1)"));
  CHECK(has_line(text, R"(klingq_insert_to_submit_seconds_bucket{le="30"} 0)"));
  CHECK(has_line(text, R"(klingq_submit_to_complete_seconds_bucket{le="240"} 1)"));
  CHECK(has_line(text, R"(klingq_submit_to_complete_seconds_bucket{le="180"} 0)"));
}

TEST_CASE("metrics: every documented family is registered once, every name prefixed klingq_") {
  Metrics metrics;
  auto text = metrics.serialize();
  std::multiset<std::string> families;
  for (const auto& line : lines_of(text)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      auto name = line.substr(7, line.find(' ', 7) - 7);
      families.insert(name);
    } else if (!line.empty() && line[0] != '#') {
      CHECK_MESSAGE(line.rfind("klingq_", 0) == 0, line);
    }
  }
  const std::vector<std::string> expected{
      "klingq_jobs", "klingq_submissions_total", "klingq_rate_limited_total",
      "klingq_limiter_limit", "klingq_limiter_remaining",
      "klingq_limiter_reset_timestamp_seconds", "klingq_in_flight_jobs",
      "klingq_parallel_limit", "klingq_daily_used", "klingq_daily_limit",
      "klingq_credit_balance", "klingq_credit_reserved", "klingq_credit_spent_total",
      "klingq_low_balance", "klingq_api_request_duration_seconds",
      "klingq_insert_to_submit_seconds", "klingq_submit_to_complete_seconds",
      "klingq_webhooks_total", "klingq_polls_total", "klingq_instances", "klingq_halted",
      "klingq_paused", "klingq_stuck_jobs", "klingq_downloads_total", "klingq_download_bytes_total",
      "klingq_build_info", "klingq_credit_refunded_total", "klingq_metrics_publisher",
      "klingq_process_cpu_seconds_total", "klingq_process_resident_memory_bytes", "klingq_process_open_fds",
      "klingq_process_max_fds", "klingq_process_start_time_seconds"};
  CHECK(families.size() == expected.size());
  for (const auto& name : expected) CHECK_MESSAGE(families.count(name) == 1, name);

  // Every label value exists from the start, so rate() and absent() behave on day one.
  for (auto state : {JobState::queued, JobState::dispatching, JobState::submitted,
                     JobState::completed, JobState::failed, JobState::cancelled}) {
    CHECK(has_line(text, "klingq_jobs{state=\"" + std::string(to_string(state)) + "\"} 0"));
  }
  for (auto outcome : {Outcome::accepted, Outcome::invalid_job, Outcome::transient,
                       Outcome::rate_limited, Outcome::no_credit, Outcome::unauthorized}) {
    CHECK(has_line(text, "klingq_submissions_total{outcome=\"" +
                             std::string(to_string(outcome)) + "\"} 0"));
  }
  for (auto result : {WebhookResult::accepted, WebhookResult::rejected_signature,
                      WebhookResult::too_large, WebhookResult::unknown_job,
                      WebhookResult::duplicate, WebhookResult::bad_request}) {
    CHECK(has_line(text, "klingq_webhooks_total{result=\"" + std::string(to_string(result)) +
                             "\"} 0"));
  }
  for (auto result : {DownloadOutcome::ok, DownloadOutcome::retry, DownloadOutcome::gave_up,
                      DownloadOutcome::interrupted}) {
    CHECK(has_line(text, "klingq_downloads_total{result=\"" + std::string(to_string(result)) + "\"} 0"));
  }
  CHECK(has_line(text, "klingq_download_bytes_total 0"));
  CHECK(has_line(text, "klingq_build_info{version=\"" + std::string(klingq::version()) + "\"} 1"));
}

TEST_CASE("metrics: accessors return the same series each time") {
  Metrics metrics;
  CHECK(&metrics.submissions(Outcome::transient) == &metrics.submissions(Outcome::transient));
  CHECK(&metrics.submissions(Outcome::transient) != &metrics.submissions(Outcome::no_credit));
  CHECK(&metrics.limit(Window::rpm) != &metrics.remaining(Window::rpm));
  CHECK(std::string_view(to_string(Window::parallel)) == "parallel");
  CHECK(std::string_view(to_string(Outcome::no_credit)) == "no_credit");
  CHECK(to_string(ApiCall::credits) == "credits");
}
