// The operations endpoint served on http.listen: /metrics for Prometheus, /healthz for
// "is the process alive" and /readyz for "should traffic and alerts treat this
// instance as working". The request → response logic is a plain function
// (handle_ops_request) so it is testable without sockets; make_ops_handler adapts it to
// the shared klingq::http::Server.
//
//   GET /metrics  200, text/plain; version=0.0.4: Metrics::serialize()
//   GET /healthz  200 "ok" for as long as the event loop answers
//   GET /readyz   200 {"status":"ready"} when the probe reports the database reachable
//                 and dispatch not halted; else 503 {"status":"not_ready","reason":...}
//   other paths   404;  other methods on these paths  405 with Allow: GET
#pragma once

#include "http/server.hpp"
#include "ops/metrics.hpp"

#include <functional>
#include <string>

namespace klingq::ops {

// What /readyz reports, as the daemon currently knows it.
struct ReadyState {
  bool database_reachable = false;  // the last database round trip succeeded
  bool halted = false;              // dispatch stopped after a 401 from the API
  std::string detail;               // optional text for operators (never a secret)
};

// Called on the HTTP server's executor for every /readyz request, so it must not block:
// return state the daemon already keeps (updated by its own database heartbeat), do not
// run a query here. An exception counts as not ready.
using ReadyProbe = std::function<ReadyState()>;

// Reason codes in the /readyz body when not ready.
inline constexpr const char* reason_database_unreachable = "database_unreachable";
inline constexpr const char* reason_halted_unauthorized = "halted_unauthorized";
inline constexpr const char* reason_probe_failed = "probe_failed";

// Content type of /metrics: the Prometheus text exposition format.
inline constexpr const char* metrics_content_type = "text/plain; version=0.0.4; charset=utf-8";

// Answers one request. Pure apart from reading metrics and calling the probe.
http::Response handle_ops_request(const http::Request& request, const Metrics& metrics,
                                  const ReadyProbe& ready_probe);

// A Handler for http::Server. `metrics` must outlive the server; the probe is copied.
http::Handler make_ops_handler(const Metrics& metrics, ReadyProbe ready_probe);

}  // namespace klingq::ops
