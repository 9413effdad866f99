// options_from: the one place where config keys become the dispatcher's options.
#include "dispatcher/options.hpp"

#include <unistd.h>

namespace klingq::dispatcher {

EngineOptions options_from(const config::Config& config, config::Secret api_key) {
  EngineOptions o;
  auto& q = o.queue;
  q.instance = config.dispatch.instance_id;
  if (q.instance.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    q.instance = std::string(host) + "-" + std::to_string(getpid());
  }
  q.limiter.fallback_window = std::chrono::seconds(config.limits.window_seconds);
  q.limiter.poll_share = config.poll.share;
  q.limiter.polls_count_against_rpm = config.api.poll_counts_against_rpm;
  q.limiter.answer_deadline = std::chrono::milliseconds(config.api.request_timeout_ms);
  if (config.limits.day_starts_at_minutes) {
    q.limiter.day_starts_at = std::chrono::minutes(*config.limits.day_starts_at_minutes);
  }
  q.cost = config.credits.cost;
  q.credit_reserve = config.credits.reserve;
  q.starvation = std::chrono::seconds(config.credits.starvation_seconds);
  q.lease = std::chrono::seconds(config.dispatch.lease_seconds);
  q.retry_base = std::chrono::milliseconds(config.dispatch.retry_base_ms);
  q.retry_max = std::chrono::milliseconds(config.dispatch.retry_max_ms);
  q.first_poll = std::chrono::seconds(config.poll.first_after_seconds);
  q.webhook_grace = std::chrono::seconds(config.poll.webhook_grace_seconds);
  q.min_poll_interval = std::chrono::milliseconds(config.poll.min_interval_ms);
  q.max_poll_interval = std::chrono::seconds(config.poll.max_interval_seconds);
  q.poll_horizon = std::chrono::seconds(config.poll.horizon_seconds);
  q.plan = config.starting_limits();
  o.protocol = config.api.protocol;
  o.api_key = std::move(api_key);
  q.webhook_url = config.webhook.public_url;
  o.webhook_secrets = config.webhook.secrets;
  o.database_url = config.database.url;
  o.claim_batch = config.dispatch.claim_batch;
  o.max_in_flight = config.dispatch.max_in_flight_requests;
  o.safety_poll = std::chrono::milliseconds(config.dispatch.safety_poll_ms);
  o.credits_refresh = std::chrono::seconds(config.credits.refresh_seconds);
  o.low_balance_warning = config.credits.low_balance_warning;
  auto& out = o.outputs;
  out.download = config.outputs.download;
  out.dir = config.outputs.dir;
  out.max_attempts = config.outputs.max_attempts;
  out.max_bytes = static_cast<std::uint64_t>(config.outputs.max_bytes);
  out.timeout = std::chrono::seconds(config.outputs.timeout_seconds);
  out.concurrency = config.outputs.concurrency;
  out.retry_base = q.retry_base;
  out.retry_max = q.retry_max;
  q.download_outputs = config.outputs.download;
  return o;
}

}  // namespace klingq::dispatcher
