// The ops endpoint's routing and responses; see ops_http.hpp.
#include "ops/ops_http.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <exception>
#include <memory>
#include <string_view>
#include <utility>

namespace klingq::ops {
namespace {

namespace bhttp = boost::beast::http;

// Built here rather than with http::make_response so that everything a probe or a
// scraper sees is decided in this file: the version and keep-alive follow the request,
// and no proxy may cache a health answer.
http::Response respond(const http::Request& request, bhttp::status status, std::string body,
                       std::string_view content_type) {
  http::Response response{status, request.version()};
  response.set(bhttp::field::content_type, content_type);
  response.set(bhttp::field::cache_control, "no-store");
  response.keep_alive(request.keep_alive());
  response.body() = std::move(body);
  response.prepare_payload();
  return response;
}

http::Response json(const http::Request& request, bhttp::status status,
                    const boost::json::object& body) {
  return respond(request, status, boost::json::serialize(body), "application/json");
}

http::Response readiness(const http::Request& request, const ReadyProbe& ready_probe) {
  ReadyState state;
  std::string failure;
  try {
    if (!ready_probe) throw std::logic_error("no readiness probe configured");
    state = ready_probe();
  } catch (const std::exception& e) {
    failure = e.what();
  } catch (...) {
    failure = "unknown exception";
  }
  boost::json::object body;
  const char* reason = nullptr;
  // A failed probe and an unreachable database are reported before a halt: they are
  // what the operator must fix first.
  if (!failure.empty()) {
    reason = reason_probe_failed;
    body["detail"] = failure;
  } else if (!state.database_reachable) {
    reason = reason_database_unreachable;
  } else if (state.halted) {
    reason = reason_halted_unauthorized;
  }
  if (failure.empty() && !state.detail.empty()) body["detail"] = state.detail;
  if (!reason) {
    body["status"] = "ready";
    return json(request, bhttp::status::ok, body);
  }
  body["status"] = "not_ready";
  body["reason"] = reason;
  return json(request, bhttp::status::service_unavailable, body);
}

// A coroutine taking its state by value, not a capturing lambda coroutine, so that the
// frame never refers to a closure that might be gone when it resumes.
boost::asio::awaitable<http::Response> serve(http::Request request, const Metrics* metrics,
                                             std::shared_ptr<const ReadyProbe> ready_probe) {
  co_return handle_ops_request(request, *metrics, *ready_probe);
}

}  // namespace

http::Response handle_ops_request(const http::Request& request, const Metrics& metrics,
                                  const ReadyProbe& ready_probe) {
  std::string_view target = request.target();
  // Prometheus and probes never send a query, but one must not turn a path into a 404.
  target = target.substr(0, target.find('?'));

  bool known = target == "/metrics" || target == "/healthz" || target == "/readyz";
  if (!known) {
    return json(request, bhttp::status::not_found, {{"error", "not found"}});
  }
  if (request.method() != bhttp::verb::get) {
    auto response = json(request, bhttp::status::method_not_allowed,
                         {{"error", "method not allowed"}});
    response.set(bhttp::field::allow, "GET");
    return response;
  }
  if (target == "/metrics") {
    return respond(request, bhttp::status::ok, metrics.serialize(), metrics_content_type);
  }
  if (target == "/healthz") {
    return respond(request, bhttp::status::ok, "ok", "text/plain; charset=utf-8");
  }
  return readiness(request, ready_probe);
}

http::Handler make_ops_handler(const Metrics& metrics, ReadyProbe ready_probe) {
  auto probe = std::make_shared<const ReadyProbe>(std::move(ready_probe));
  return [metrics = &metrics, probe](http::Request request) {
    return serve(std::move(request), metrics, probe);
  };
}

}  // namespace klingq::ops
