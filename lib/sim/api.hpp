// The simulator's API surface, sans-io: a request (method, target, the few headers that
// matter, body) and the real time in; the reply (status, headers, body, or "close the
// connection without answering", plus a real delay) out. Routing, authentication,
// GraphQL execution, the JSON formats of API.md, the X-RateLimit-* headers, injected
// faults and the /_sim/* control endpoints all live here, over the pure Account; the
// Beast server in server.cpp only carries the reply out and delivers the webhooks this
// class hands it. Unit tests drive it with a fake clock and no socket.
#pragma once

#include "sim/clock.hpp"
#include "sim/graphql.hpp"
#include "sim/secret.hpp"
#include "sim/state.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace klingq::sim {

struct ApiRequest {
  std::string_view method;         // "GET", "POST", ...
  std::string_view target;         // path and query
  std::string_view body;
  std::string_view authorization;  // the Authorization header, "" when absent
  std::string_view api_key;        // the X-API-Key header, "" when absent
  std::optional<std::string_view> idempotency_key;  // the Idempotency-Key header
};

struct ApiReply {
  unsigned status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // besides Content-Type/Length
  std::string content_type = "application/json";
  std::string body;
  // Fault injection: close the connection without writing anything.
  bool close_without_response = false;
  // Fault injection: answer this much (real time) later.
  std::chrono::milliseconds delay{0};
  // Fault injection: announce the whole body's length, send only this many bytes of it,
  // then reset the connection (a download cut short).
  std::optional<std::size_t> truncate_body_at;

  // The value of a header set on this reply, "" when absent (tests).
  std::string header(std::string_view name) const;
};

// A webhook to POST: body and signature are final; faults say how to mistreat it.
struct WebhookDelivery {
  std::string job_id;
  std::string url;
  std::string body;
  std::string signature;  // the X-Doitong-Signature value
  WebhookFaults faults;
  std::chrono::milliseconds delay{0};  // real, when faults.delay
};

class Api {
 public:
  // real_start is the real instant of start-up; the simulated clock reads
  // clock_start (default: real_start) then and runs time_scale times faster.
  Api(Settings settings, Secret api_key, Secret webhook_secret, double time_scale,
      TimePoint real_start, std::optional<TimePoint> clock_start = std::nullopt);

  ApiReply handle(const ApiRequest& request, TimePoint real_now);

  // Advances the jobs to real_now and returns the webhooks of the jobs that finished.
  std::vector<WebhookDelivery> take_webhooks(TimePoint real_now);
  // The real instant the next job finishes, for the server's timer.
  std::optional<TimePoint> next_due_real() const;

  const TimeScale& time_scale() const { return scale_; }
  Account& account() { return account_; }
  const Account& account() const { return account_; }

 private:
  // The four API endpoints: faults, then authentication, the request window, the endpoint.
  ApiReply handle_api(const ApiRequest& request, std::string_view path, TimePoint real_now,
                      TimePoint now);
  ApiReply dispatch(const ApiRequest& request, std::string_view path, TimePoint real_now,
                    TimePoint now);
  ApiReply graphql(const ApiRequest& request, TimePoint real_now, TimePoint now);
  // A validated generate request through the account. response_key: the GraphQL
  // field's alias, or "generatevideo" for REST; selection: the fields to return.
  ApiReply submit(const ApiRequest& request, GenerateParams params, TimePoint real_now,
                  TimePoint now, const std::string& response_key,
                  const std::vector<graphql::Field>& selection);
  ApiReply handle_control(const ApiRequest& request, std::string_view path, TimePoint now);
  // GET /outputs/<id>.mp4: a completed job's video (OutputSettings), no authentication
  // (like a CDN URL) and outside every API limit.
  ApiReply handle_output(const ApiRequest& request, std::string_view path, TimePoint now);
  ApiReply error_reply(const ApiError& error, TimePoint real_now) const;
  void add_rate_headers(ApiReply& reply, TimePoint now);

  Settings initial_settings_;  // what /_sim/reset restores
  Secret api_key_;
  Secret webhook_secret_;
  TimeScale scale_;
  Account account_;
};

}  // namespace klingq::sim
