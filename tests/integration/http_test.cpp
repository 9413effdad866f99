// The shared HTTP server and client over real TCP on 127.0.0.1 with port 0: round
// trips, keep-alive reuse, the connection cap, deadlines, limits, malformed and slow
// peers, shutdown, and the retry of a stale pooled connection. Raw sockets stand in
// for misbehaving peers that the client would never imitate.
//
// Each test runs its io_context on the test thread until the test coroutine finishes
// (or a generous limit passes, which fails the test), so server state is only ever
// touched from one thread and no sleep stands in for a condition.
#include "http/address.hpp"
#include "http/server.hpp"

#include <doctest/doctest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <exception>
#include <stdexcept>
#include <string>

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using klingq::http::Request;
using klingq::http::Response;
using klingq::http::Server;
using klingq::http::ServerOptions;

namespace {

constexpr auto as_result = asio::as_tuple(asio::use_awaitable);

// Runs one test coroutine to completion on the test thread. The limit only catches a
// hang; a passing test finishes long before it.
void run_test(asio::io_context& io, asio::awaitable<void> test,
              std::chrono::milliseconds limit = 5000ms) {
  bool finished = false;
  std::exception_ptr failure;
  asio::co_spawn(io, std::move(test), [&](std::exception_ptr error) {
    finished = true;
    failure = error;
    io.stop();
  });
  io.restart();
  io.run_for(limit);
  REQUIRE_MESSAGE(finished, "test coroutine did not finish within its limit");
  if (failure) std::rethrow_exception(failure);
}

asio::awaitable<void> wait_for(std::chrono::milliseconds duration) {
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  co_await timer.async_wait(as_result);
}

// Waits until the condition holds, checking every few milliseconds, for at most the
// limit; returns whether it held. For facts the server learns after the test's peer
// has moved on (a socket we closed is noticed on the server's next read).
template <class Condition>
asio::awaitable<bool> eventually(Condition condition, std::chrono::milliseconds limit = 1000ms) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) co_return false;
    co_await wait_for(5ms);
  }
  co_return true;
}

// The routes every test server offers:
//   /echo        the method, target and body back, with the request's X-Test header
//   /slow?ms=N   answers after N milliseconds (a slow upstream)
//   /throw       the handler throws (the server must answer 500 without the text)
asio::awaitable<Response> test_handler(Request request) {
  std::string target(request.target());
  if (target.rfind("/slow", 0) == 0) {
    auto equals = target.find("ms=");
    auto milliseconds = equals == std::string::npos ? 100 : std::stoi(target.substr(equals + 3));
    co_await wait_for(std::chrono::milliseconds(milliseconds));
    co_return klingq::http::make_response(200, "slow done", "text/plain");
  }
  if (target == "/throw") throw std::runtime_error("secret database detail");
  auto response = klingq::http::make_response(
      200, std::string(request.method_string()) + " " + target + " " + request.body(),
      "text/plain");
  response.set("X-Echo", request["X-Test"]);
  co_return response;
}

struct TestServer {
  explicit TestServer(asio::io_context& io, ServerOptions options = {})
      : server(io.get_executor(), options, test_handler) {
    endpoint = server.listen("127.0.0.1:0");
    server.start();
  }
  Server server;
  tcp::endpoint endpoint;
};

// Connects a raw socket, sends bytes, and reads until the server closes; what a
// misbehaving or minimal peer sees.
asio::awaitable<std::string> raw_exchange(tcp::endpoint endpoint, std::string bytes) {
  tcp::socket socket(co_await asio::this_coro::executor);
  co_await socket.async_connect(endpoint, asio::use_awaitable);
  co_await asio::async_write(socket, asio::buffer(bytes), asio::use_awaitable);
  std::string received;
  auto [error, size] = co_await asio::async_read(socket, asio::dynamic_buffer(received), as_result);
  CHECK(error == asio::error::eof);
  co_return received;
}

}  // namespace

TEST_CASE("http address: listen addresses and base URLs") {
  using klingq::http::join_target;
  using klingq::http::parse_base_url;
  using klingq::http::parse_host_port;
  CHECK(parse_host_port("127.0.0.1:0").host == "127.0.0.1");
  CHECK(parse_host_port("127.0.0.1:0").port == "0");
  CHECK(parse_host_port("[::1]:8080").host == "::1");
  CHECK(parse_host_port("localhost:9").port == "9");
  CHECK_THROWS_AS(parse_host_port("localhost"), std::invalid_argument);
  CHECK_THROWS_AS(parse_host_port("::1:80"), std::invalid_argument);
  CHECK_THROWS_AS(parse_host_port("host:70000"), std::invalid_argument);
  CHECK_THROWS_AS(parse_host_port(":80"), std::invalid_argument);

  auto plain = parse_base_url("http://api.example.com");
  CHECK_FALSE(plain.tls);
  CHECK(plain.port == "80");
  CHECK(plain.host_header == "api.example.com");
  CHECK(plain.path_prefix.empty());
  auto secure = parse_base_url("https://[::1]:8443/v1/");
  CHECK(secure.tls);
  CHECK(secure.host == "::1");
  CHECK(secure.port == "8443");
  CHECK(secure.host_header == "[::1]:8443");
  CHECK(secure.path_prefix == "/v1");
  CHECK_THROWS_AS(parse_base_url("ftp://host"), std::invalid_argument);
  CHECK_THROWS_AS(parse_base_url("http://"), std::invalid_argument);
  CHECK_THROWS_AS(parse_base_url("http://host/x?y=1"), std::invalid_argument);
  CHECK_THROWS_AS(parse_base_url("http://user:pw@host"), std::invalid_argument);

  CHECK(join_target("", "") == "/");
  CHECK(join_target("", "/tasks?a=1") == "/tasks?a=1");
  CHECK(join_target("/v1", "/tasks") == "/v1/tasks");
  CHECK(join_target("/v1", "tasks") == "/v1/tasks");
  CHECK(join_target("/v1", "") == "/v1");
}

TEST_CASE("http server: listen binds port 0, resolves localhost, and names a bad address") {
  asio::io_context io;
  Server server(io.get_executor(), {}, test_handler);
  auto endpoint = server.listen("127.0.0.1:0");
  CHECK(endpoint.address().to_string() == "127.0.0.1");
  CHECK(endpoint.port() != 0);
  Server by_name(io.get_executor(), {}, test_handler);
  CHECK(by_name.listen("localhost:0").address().is_loopback());
  Server taken(io.get_executor(), {}, test_handler);
  try {
    taken.listen("127.0.0.1:" + std::to_string(endpoint.port()));
    FAIL("binding a port in use must throw");
  } catch (const std::system_error& e) {
    CHECK(std::string(e.what()).find("127.0.0.1:" + std::to_string(endpoint.port())) !=
          std::string::npos);
  }
}

TEST_CASE("http server: answers a raw request and closes when asked to") {
  asio::io_context io;
  TestServer test_server(io);
  run_test(io, [&]() -> asio::awaitable<void> {
    auto reply = co_await raw_exchange(
        test_server.endpoint,
        "POST /echo HTTP/1.1\r\nHost: x\r\nX-Test: abc\r\nContent-Length: 5\r\n"
        "Connection: close\r\n\r\nhello");
    CHECK(reply.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(reply.find("X-Echo: abc\r\n") != std::string::npos);
    CHECK(reply.find("Content-Length: 16\r\n") != std::string::npos);
    CHECK(reply.find("\r\n\r\nPOST /echo hello") != std::string::npos);
  }());
}

TEST_CASE("http server: a handler exception becomes 500 without its text") {
  asio::io_context io;
  TestServer test_server(io);
  run_test(io, [&]() -> asio::awaitable<void> {
    auto reply = co_await raw_exchange(test_server.endpoint,
                                       "GET /throw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(reply.rfind("HTTP/1.1 500 Internal Server Error\r\n", 0) == 0);
    CHECK(reply.find(R"({"error":"internal"})") != std::string::npos);
    CHECK(reply.find("secret") == std::string::npos);
  }());
}

TEST_CASE("http server: malformed request gets 400 and the connection closes") {
  asio::io_context io;
  TestServer test_server(io);
  run_test(io, [&]() -> asio::awaitable<void> {
    // No Connection: close here: the close must come from the server.
    auto reply = co_await raw_exchange(test_server.endpoint, "GARBAGE\x01 / HTTP/1.1\r\n\r\n");
    CHECK(reply.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
    auto bad_version = co_await raw_exchange(test_server.endpoint, "GET / HTTP/9\r\n\r\n");
    CHECK(bad_version.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
    CHECK(co_await eventually([&] { return test_server.server.connection_count() == 0; }));
  }());
}

TEST_CASE("http server: a body over body_limit gets 413 and the connection closes") {
  asio::io_context io;
  ServerOptions options;
  options.body_limit = 1024;
  TestServer test_server(io, options);
  run_test(io, [&]() -> asio::awaitable<void> {
    std::string body(64 * 1024, 'x');  // more than the socket buffers take unread
    auto reply = co_await raw_exchange(
        test_server.endpoint,
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\n\r\n" + body);
    CHECK(reply.rfind("HTTP/1.1 413 Payload Too Large\r\n", 0) == 0);
    // Chunked bodies have no Content-Length to refuse up front; the limit still holds.
    std::string chunk(2000, 'y');
    auto chunked = co_await raw_exchange(
        test_server.endpoint,
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n" + chunk +
            "\r\n0\r\n\r\n");
    CHECK(chunked.rfind("HTTP/1.1 413 Payload Too Large\r\n", 0) == 0);
  }());
}

TEST_CASE("http server: a slow-header client is cut off at read_timeout while others are served") {
  asio::io_context io;
  ServerOptions options;
  options.read_timeout = 300ms;
  TestServer test_server(io, options);
  run_test(io, [&]() -> asio::awaitable<void> {
    auto executor = co_await asio::this_coro::executor;
    auto started = std::chrono::steady_clock::now();
    tcp::socket slow(executor);
    co_await slow.async_connect(test_server.endpoint, asio::use_awaitable);
    std::string half = "GET /echo HTTP/1.1\r\nHos";
    co_await asio::async_write(slow, asio::buffer(half), asio::use_awaitable);

    // Meanwhile another client is answered at once.
    auto reply = co_await raw_exchange(test_server.endpoint,
                                       "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    auto answered = std::chrono::steady_clock::now() - started;
    CHECK(reply.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(answered < 300ms);

    std::string received;
    auto [error, size] = co_await asio::async_read(slow, asio::dynamic_buffer(received), as_result);
    auto closed = std::chrono::steady_clock::now() - started;
    CHECK(error == asio::error::eof);
    CHECK(received.empty());
    CHECK(closed >= 300ms);
    CHECK(closed < 1500ms);
  }());
  CHECK(test_server.server.connection_count() == 0);
}

TEST_CASE("http server: stop() closes idle connections, finishes busy ones, and stops accepting") {
  asio::io_context io;
  TestServer test_server(io);  // default timeouts are long: only stop() can close quickly
  run_test(io, [&]() -> asio::awaitable<void> {
    auto executor = co_await asio::this_coro::executor;
    tcp::socket idle(executor);
    co_await idle.async_connect(test_server.endpoint, asio::use_awaitable);
    tcp::socket busy(executor);
    co_await busy.async_connect(test_server.endpoint, asio::use_awaitable);
    std::string slow_request = "GET /slow?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n";
    co_await asio::async_write(busy, asio::buffer(slow_request), asio::use_awaitable);
    co_await wait_for(50ms);  // a margin for the server to read the request; not a condition
    CHECK(test_server.server.connection_count() == 2);

    auto started = std::chrono::steady_clock::now();
    test_server.server.stop();
    std::string idle_received;
    auto [idle_error, idle_size] =
        co_await asio::async_read(idle, asio::dynamic_buffer(idle_received), as_result);
    CHECK(idle_error == asio::error::eof);
    CHECK(std::chrono::steady_clock::now() - started < 150ms);

    // The busy request still gets its answer, marked as the connection's last.
    std::string busy_received;
    auto [busy_error, busy_size] =
        co_await asio::async_read(busy, asio::dynamic_buffer(busy_received), as_result);
    CHECK(busy_error == asio::error::eof);
    CHECK(busy_received.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(busy_received.find("Connection: close\r\n") != std::string::npos);
    CHECK(busy_received.find("slow done") != std::string::npos);

    tcp::socket late(executor);
    auto [connect_error] = co_await late.async_connect(test_server.endpoint, as_result);
    CHECK(connect_error == asio::error::connection_refused);
  }());
  CHECK(test_server.server.connection_count() == 0);
}

TEST_CASE("http server: beyond max_connections new sockets are closed at once") {
  asio::io_context io;
  ServerOptions options;
  options.max_connections = 2;
  TestServer test_server(io, options);
  run_test(io, [&]() -> asio::awaitable<void> {
    auto executor = co_await asio::this_coro::executor;
    tcp::socket first(executor), second(executor);
    co_await first.async_connect(test_server.endpoint, asio::use_awaitable);
    co_await second.async_connect(test_server.endpoint, asio::use_awaitable);
    std::string third_received;
    tcp::socket third(executor);
    co_await third.async_connect(test_server.endpoint, asio::use_awaitable);
    auto [error, size] = co_await asio::async_read(third, asio::dynamic_buffer(third_received), as_result);
    CHECK((error == asio::error::eof || error == asio::error::connection_reset));
    CHECK(test_server.server.accepted_total() == 3);
    CHECK(test_server.server.connection_count() == 2);
    // The two admitted connections still work.
    std::string request = "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    co_await asio::async_write(first, asio::buffer(request), asio::use_awaitable);
    std::string first_received;
    co_await asio::async_read(first, asio::dynamic_buffer(first_received), as_result);
    CHECK(first_received.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  }());
}
