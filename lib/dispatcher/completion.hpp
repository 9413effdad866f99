// Completion: a job's terminal status applied, from a signed webhook or from a poll.
// apply() moves the row (dispatcher::apply_completion) and, the first time, frees its
// parallel slot at once (wakes the claimer) and marks a finished video due (wakes the
// downloads). on_webhook() is the webhook receiver's handler without sockets: the
// delivery's method, path, signature header and raw body in, the status and message
// to answer with out (Engine::webhook_handler adapts it to http::Server).
#pragma once

#include "dispatcher/context.hpp"
#include "dispatcher/transactions.hpp"

#include <boost/asio/awaitable.hpp>

#include <string>

namespace klingq::dispatcher {

// One webhook delivery as the HTTP server received it.
struct WebhookDelivery {
  std::string method;
  std::string target;
  std::string signature;  // X-Doitong-Signature
  std::string body;       // raw bytes: the signature covers them
};

// What to answer: the status, and the message of the JSON body {"message": ...}.
struct WebhookAnswer {
  unsigned status = 200;
  std::string message;
};

class Completions {
 public:
  explicit Completions(Context& context);

  // Applies a terminal status. Throws what the database throws; the caller reports it.
  boost::asio::awaitable<CompletionOutcome> apply(Completion completion);

  // Verifies, applies and answers one webhook; never throws. A database failure is a
  // 503, which makes the provider deliver again later.
  boost::asio::awaitable<WebhookAnswer> on_webhook(WebhookDelivery delivery);

 private:
  Context& ctx_;
};

}  // namespace klingq::dispatcher
