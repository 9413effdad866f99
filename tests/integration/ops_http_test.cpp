// The ops endpoint (/metrics, /healthz, /readyz): routing and bodies through the pure
// handle_ops_request, then the same endpoints over real TCP through http::Server on
// 127.0.0.1:0, as Prometheus and a load balancer's probe reach them.
//
// The TCP test runs server and client coroutines on one io_context on the test thread
// until the client finishes (a generous limit only catches a hang), so nothing sleeps.
#include "http/server.hpp"
#include "ops/metrics.hpp"
#include "ops/ops_http.hpp"

#include <doctest/doctest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>

#include <chrono>
#include <exception>
#include <stdexcept>
#include <string>

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using klingq::http::Request;
using klingq::http::Response;
using namespace klingq::ops;
using namespace std::chrono_literals;

namespace {

Request request(bhttp::verb method, std::string target) {
  Request request{method, target, 11};
  request.set(bhttp::field::host, "127.0.0.1");
  request.prepare_payload();
  return request;
}

boost::json::value body_json(const Response& response) {
  return boost::json::parse(response.body());
}

// A probe whose answer the test changes between requests.
struct ProbeState {
  ReadyState state{true, false, ""};
  bool throws = false;
  ReadyProbe probe() {
    return [this] {
      if (throws) throw std::runtime_error("heartbeat state unavailable");
      return state;
    };
  }
};

}  // namespace

TEST_CASE("ops handler: /metrics serves the registry in the text format") {
  Metrics metrics;
  metrics.submissions(Outcome::accepted).Increment(4);
  ProbeState probe;
  auto response = handle_ops_request(request(bhttp::verb::get, "/metrics"), metrics, probe.probe());
  CHECK(response.result() == bhttp::status::ok);
  CHECK(response[bhttp::field::content_type] == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(response.body() == metrics.serialize());
  CHECK(response.body().find("klingq_submissions_total{outcome=\"accepted\"} 4\n") !=
        std::string::npos);
  // A query string does not change the route.
  auto with_query =
      handle_ops_request(request(bhttp::verb::get, "/metrics?x=1"), metrics, probe.probe());
  CHECK(with_query.result() == bhttp::status::ok);
}

TEST_CASE("ops handler: /healthz is ok whatever the readiness") {
  Metrics metrics;
  ProbeState probe;
  probe.state = {false, true, ""};
  auto response = handle_ops_request(request(bhttp::verb::get, "/healthz"), metrics, probe.probe());
  CHECK(response.result() == bhttp::status::ok);
  CHECK(response.body() == "ok");
}

TEST_CASE("ops handler: /readyz follows the probe, with a JSON reason when not ready") {
  Metrics metrics;
  ProbeState probe;
  auto get_readyz = [&] {
    return handle_ops_request(request(bhttp::verb::get, "/readyz"), metrics, probe.probe());
  };

  auto ready = get_readyz();
  CHECK(ready.result() == bhttp::status::ok);
  CHECK(ready[bhttp::field::content_type] == "application/json");
  CHECK(body_json(ready).at("status") == "ready");

  probe.state = {false, false, "connection refused"};
  auto no_database = get_readyz();
  CHECK(no_database.result() == bhttp::status::service_unavailable);
  CHECK(body_json(no_database).at("status") == "not_ready");
  CHECK(body_json(no_database).at("reason") == "database_unreachable");
  CHECK(body_json(no_database).at("detail") == "connection refused");

  probe.state = {true, true, ""};
  auto halted = get_readyz();
  CHECK(halted.result() == bhttp::status::service_unavailable);
  CHECK(body_json(halted).at("reason") == "halted_unauthorized");
  CHECK_FALSE(body_json(halted).as_object().contains("detail"));

  probe.throws = true;
  auto failed = get_readyz();
  CHECK(failed.result() == bhttp::status::service_unavailable);
  CHECK(body_json(failed).at("reason") == "probe_failed");
  CHECK(body_json(failed).at("detail") == "heartbeat state unavailable");

  auto no_probe = handle_ops_request(request(bhttp::verb::get, "/readyz"), metrics, ReadyProbe{});
  CHECK(no_probe.result() == bhttp::status::service_unavailable);
  CHECK(body_json(no_probe).at("reason") == "probe_failed");
}

TEST_CASE("ops handler: unknown paths are 404, other methods 405 with Allow") {
  Metrics metrics;
  ProbeState probe;
  auto missing = handle_ops_request(request(bhttp::verb::get, "/"), metrics, probe.probe());
  CHECK(missing.result() == bhttp::status::not_found);
  auto near_miss = handle_ops_request(request(bhttp::verb::get, "/metrics/"), metrics, probe.probe());
  CHECK(near_miss.result() == bhttp::status::not_found);
  auto post_missing = handle_ops_request(request(bhttp::verb::post, "/nope"), metrics, probe.probe());
  CHECK(post_missing.result() == bhttp::status::not_found);
  for (auto method : {bhttp::verb::post, bhttp::verb::put, bhttp::verb::delete_, bhttp::verb::head}) {
    for (const char* target : {"/metrics", "/healthz", "/readyz"}) {
      auto response = handle_ops_request(request(method, target), metrics, probe.probe());
      CHECK_MESSAGE(response.result() == bhttp::status::method_not_allowed, target);
      CHECK(response[bhttp::field::allow] == "GET");
    }
  }
}

namespace {

// One request over a fresh connection, the way curl or a probe does it.
asio::awaitable<Response> fetch(tcp::endpoint endpoint, bhttp::verb method, std::string target) {
  tcp::socket socket(co_await asio::this_coro::executor);
  co_await socket.async_connect(endpoint, asio::use_awaitable);
  auto outgoing = request(method, std::move(target));
  outgoing.keep_alive(false);
  co_await bhttp::async_write(socket, outgoing, asio::use_awaitable);
  boost::beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  // HEAD is refused with 405 here, but tell the parser anyway so a body-less answer
  // to HEAD would not hang the read.
  parser.skip(method == bhttp::verb::head);
  co_await bhttp::async_read(socket, buffer, parser, asio::use_awaitable);
  co_return parser.release();
}

}  // namespace

TEST_CASE("ops endpoint over real TCP: every route through http::Server on port 0") {
  asio::io_context io;
  Metrics metrics;
  metrics.polls().Increment(3);
  ProbeState probe;
  klingq::http::Server server(io.get_executor(), {}, make_ops_handler(metrics, probe.probe()));
  auto endpoint = server.listen("127.0.0.1:0");
  REQUIRE(endpoint.port() != 0);
  server.start();

  bool finished = false;
  std::exception_ptr failure;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto scraped = co_await fetch(endpoint, bhttp::verb::get, "/metrics");
        CHECK(scraped.result() == bhttp::status::ok);
        CHECK(scraped[bhttp::field::content_type] == "text/plain; version=0.0.4; charset=utf-8");
        CHECK(scraped.body().find("\nklingq_polls_total 3\n") != std::string::npos);
        CHECK(scraped.body().find("# TYPE klingq_api_request_duration_seconds histogram") !=
              std::string::npos);

        auto health = co_await fetch(endpoint, bhttp::verb::get, "/healthz");
        CHECK(health.result() == bhttp::status::ok);
        CHECK(health.body() == "ok");

        auto ready = co_await fetch(endpoint, bhttp::verb::get, "/readyz");
        CHECK(ready.result() == bhttp::status::ok);
        CHECK(boost::json::parse(ready.body()).at("status") == "ready");

        probe.state = {true, true, "401 from api"};
        auto halted = co_await fetch(endpoint, bhttp::verb::get, "/readyz");
        CHECK(halted.result() == bhttp::status::service_unavailable);
        CHECK(boost::json::parse(halted.body()).at("reason") == "halted_unauthorized");

        probe.state = {false, false, ""};
        auto no_database = co_await fetch(endpoint, bhttp::verb::get, "/readyz");
        CHECK(no_database.result() == bhttp::status::service_unavailable);
        CHECK(boost::json::parse(no_database.body()).at("reason") == "database_unreachable");

        auto missing = co_await fetch(endpoint, bhttp::verb::get, "/favicon.ico");
        CHECK(missing.result() == bhttp::status::not_found);

        auto wrong_method = co_await fetch(endpoint, bhttp::verb::post, "/metrics");
        CHECK(wrong_method.result() == bhttp::status::method_not_allowed);
        CHECK(wrong_method[bhttp::field::allow] == "GET");

        server.stop();
      },
      [&](std::exception_ptr error) {
        finished = true;
        failure = error;
        io.stop();
      });
  // Returns as soon as the client coroutine finished; the limit only turns a hang into
  // a failure.
  io.run_for(10s);
  REQUIRE_MESSAGE(finished, "ops endpoint exchange did not finish within 10 s");
  if (failure) std::rethrow_exception(failure);
}
