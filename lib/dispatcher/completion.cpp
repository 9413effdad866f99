// Completions: apply() shared by webhooks and polls, and the webhook receiver's logic.
#include "dispatcher/completion.hpp"

#include "ops/metrics.hpp"
#include "util/log.hpp"
#include "webhook/receiver.hpp"

namespace klingq::dispatcher {
namespace asio = boost::asio;

Completions::Completions(Context& context) : ctx_(context) {}

asio::awaitable<CompletionOutcome> Completions::apply(Completion completion) {
  auto settings = ctx_.options.queue;
  auto applied = co_await ctx_.pool.run([settings, completion](pqxx::connection& c) {
    return dispatcher::apply_completion(c, settings, completion);
  });
  if (applied.result == CompletionResult::applied) {
    log::job("job_completed", {{"job", std::to_string(applied.job_id)},
                               {"remote_id", completion.remote_id},
                               {"state", completion.status},
                               {"seconds", applied.submit_to_complete_seconds
                                               ? std::to_string(*applied.submit_to_complete_seconds)
                                               : std::string("?")}});
    if (applied.refunded > 0) ctx_.metrics.credit_refunded().Increment(static_cast<double>(applied.refunded));
    if (applied.submit_to_complete_seconds) ctx_.metrics.submit_to_complete().Observe(*applied.submit_to_complete_seconds);
    ctx_.claim_wanted.notify();  // the parallel slot is free now
    if (completion.status == "completed") ctx_.downloads_wanted.notify();
  }
  co_return applied;
}

asio::awaitable<WebhookAnswer> Completions::on_webhook(WebhookDelivery delivery) {
  auto decision = webhook::decide(delivery.method, delivery.target, delivery.signature, delivery.body,
                                  ctx_.options.webhook_secrets);
  auto& metrics = ctx_.metrics;
  switch (decision.verdict) {
    case webhook::Verdict::bad_signature:
      metrics.webhooks(ops::WebhookResult::rejected_signature).Increment();
      log::warning("webhook_rejected", {{"reason", decision.reason}});
      co_return WebhookAnswer{401, decision.reason};
    case webhook::Verdict::wrong_method:
    case webhook::Verdict::not_found:
    case webhook::Verdict::bad_request:
      metrics.webhooks(ops::WebhookResult::bad_request).Increment();
      co_return WebhookAnswer{decision.http_status, decision.reason};
    case webhook::Verdict::ignore:
      metrics.webhooks(ops::WebhookResult::accepted).Increment();
      co_return WebhookAnswer{200, decision.reason};
    case webhook::Verdict::record:
      break;
  }
  try {
    auto completion = *decision.completion;
    auto applied = co_await apply(completion);
    ctx_.health.note_database(true, "webhook");
    switch (applied.result) {
      case CompletionResult::applied:
        metrics.webhooks(ops::WebhookResult::accepted).Increment();
        break;
      case CompletionResult::duplicate:
        metrics.webhooks(ops::WebhookResult::duplicate).Increment();
        break;
      case CompletionResult::unknown_stored:
        metrics.webhooks(ops::WebhookResult::unknown_job).Increment();
        log::info("webhook_for_unknown_job", {{"remote_id", completion.remote_id}});
        break;
    }
    co_return WebhookAnswer{200, "ok"};
  } catch (const std::exception& e) {
    ctx_.health.note_database(false, "webhook", &e);
    // 503 makes the provider deliver again later; nothing was recorded.
    co_return WebhookAnswer{503, "temporarily unable to record"};
  }
}

}  // namespace klingq::dispatcher
