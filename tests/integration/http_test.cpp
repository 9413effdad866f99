// The shared HTTP server and client over real TCP on 127.0.0.1 with port 0: round
// trips, keep-alive reuse, the connection cap, deadlines, limits, malformed and slow
// peers, a handler's Delivery (reset, reset mid-body), shutdown, and the retry of a
// stale pooled connection; and the streaming GET that downloads use (chunks, stall
// deadline, body limit, interrupt). Raw sockets stand in
// for misbehaving peers that the client would never imitate.
//
// Each test runs its io_context on the test thread until the test coroutine finishes
// (or a generous limit passes, which fails the test), so server state is only ever
// touched from one thread and no sleep stands in for a condition.
#include "http/address.hpp"
#include "http/client.hpp"
#include "http/connect.hpp"
#include "http/server.hpp"
#include "http/streaming.hpp"

#include <doctest/doctest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using klingq::http::Client;
using klingq::http::ClientOptions;
using klingq::http::ClientRequest;
using klingq::http::ClientResult;
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
//   (all also under the prefix /api, for clients whose base URL has a path)
asio::awaitable<Response> test_handler(Request request) {
  std::string target(request.target());
  if (target.rfind("/api/", 0) == 0) target.erase(0, 4);
  if (target.rfind("/slow", 0) == 0) {
    auto equals = target.find("ms=");
    auto milliseconds = equals == std::string::npos ? 100 : std::stoi(target.substr(equals + 3));
    co_await wait_for(std::chrono::milliseconds(milliseconds));
    co_return klingq::http::make_response(200, "slow done", "text/plain");
  }
  if (target == "/throw") throw std::runtime_error("secret database detail");
  auto response = klingq::http::make_response(
      200, std::string(request.method_string()) + " " + std::string(request.target()) + " " + request.body(),
      "text/plain");
  response.set("X-Echo", request["X-Test"]);
  response.set("X-Echo-Host", request[bhttp::field::host]);
  response.set("X-Echo-Content-Type", request[bhttp::field::content_type]);
  co_return response;
}

struct TestServer {
  explicit TestServer(asio::io_context& io, ServerOptions options = {})
      : server(io.get_executor(), options, [this](Request request) {
          // What the server holds open while it handles a request: the cap's evidence.
          peak_connections = std::max(peak_connections, server.connection_count());
          return test_handler(std::move(request));
        }) {
    endpoint = server.listen("127.0.0.1:0");
    server.start();
  }
  std::string url(std::string_view prefix = "") const {
    return "http://127.0.0.1:" + std::to_string(endpoint.port()) + std::string(prefix);
  }
  std::size_t peak_connections = 0;
  Server server;
  tcp::endpoint endpoint;
};

ClientRequest get(std::string target) {
  ClientRequest request;
  request.target = std::move(target);
  return request;
}

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

TEST_CASE("http server: a ReplyHandler can reset instead of answering, or reset mid-body") {
  using klingq::http::Delivery;
  using klingq::http::Reply;
  asio::io_context io;
  // /reset: no answer; /cut: 1000 bytes promised, 400 sent; anything else: written.
  Server server(io.get_executor(), {}, [](Request request) -> asio::awaitable<Reply> {
    Reply reply{klingq::http::make_response(200, std::string(1000, 'v'), "video/mp4")};
    if (request.target() == "/reset") reply.delivery = Delivery::reset;
    if (request.target() == "/cut") {
      reply.delivery = Delivery::reset_mid_body;
      reply.body_bytes_before_reset = 400;
    }
    co_return reply;
  });
  auto endpoint = server.listen("127.0.0.1:0");
  server.start();
  // Sends one request and reads until the connection ends; returns what arrived and how
  // the connection ended.
  auto exchange = [&](std::string target) -> asio::awaitable<std::pair<std::string, boost::system::error_code>> {
    tcp::socket socket(co_await asio::this_coro::executor);
    co_await socket.async_connect(endpoint, asio::use_awaitable);
    std::string request = "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n";
    co_await asio::async_write(socket, asio::buffer(request), asio::use_awaitable);
    std::string received;
    auto [error, size] = co_await asio::async_read(socket, asio::dynamic_buffer(received), as_result);
    co_return std::pair{received, error};
  };
  run_test(io, [&]() -> asio::awaitable<void> {
    auto [nothing, reset_error] = co_await exchange("/reset");
    CHECK(nothing.empty());
    CHECK(reset_error == asio::error::connection_reset);

    auto [part, cut_error] = co_await exchange("/cut");
    CHECK(cut_error == asio::error::connection_reset);
    CHECK(part.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(part.find("Content-Length: 1000\r\n") != std::string::npos);
    auto body_start = part.find("\r\n\r\n");
    REQUIRE(body_start != std::string::npos);
    auto body = part.substr(body_start + 4);
    // At most what the handler allowed (the reset may discard bytes still queued), and
    // never the whole body the header promised.
    CHECK(body.size() <= 400);
    CHECK(body == std::string(body.size(), 'v'));

    // The server is unharmed: an ordinary reply is written whole and, as the request
    // asked, ends with a clean close (EOF), not a reset.
    tcp::socket socket(co_await asio::this_coro::executor);
    co_await socket.async_connect(endpoint, asio::use_awaitable);
    std::string request = "GET /write HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    co_await asio::async_write(socket, asio::buffer(request), asio::use_awaitable);
    std::string whole;
    auto [write_error, size] = co_await asio::async_read(socket, asio::dynamic_buffer(whole), as_result);
    CHECK(write_error == asio::error::eof);
    CHECK(whole.find("Content-Length: 1000\r\n") != std::string::npos);
    CHECK(whole.size() - whole.find("\r\n\r\n") - 4 == 1000);
    CHECK(co_await eventually([&] { return server.connection_count() == 0; }));
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
  options.read_timeout = 500ms;
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
    CHECK(answered < options.read_timeout);  // before the slow one could have been cut off

    std::string received;
    auto [error, size] = co_await asio::async_read(slow, asio::dynamic_buffer(received), as_result);
    auto closed = std::chrono::steady_clock::now() - started;
    CHECK(error == asio::error::eof);
    CHECK(received.empty());
    CHECK(closed >= options.read_timeout);
    CHECK(closed < options.read_timeout + 1500ms);
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
    // Far below the 10 s read_timeout: it was stop() that closed it.
    CHECK(std::chrono::steady_clock::now() - started < 1000ms);

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

// ---- client ----------------------------------------------------------------------

namespace {

// Reads one request head from a raw socket (the client tests below send no bodies to
// the hand-written servers).
asio::awaitable<bool> read_request_head(tcp::socket& socket, std::string& buffer) {
  auto [error, size] =
      co_await asio::async_read_until(socket, asio::dynamic_buffer(buffer), "\r\n\r\n", as_result);
  if (error) co_return false;
  buffer.erase(0, size);
  co_return true;
}

// A server that shows the keep-alive race on purpose: it answers the first request,
// then reads the second and closes that connection without answering, as a server
// whose idle timeout fires just as the request arrives. Its second connection either
// answers (answer_second_connection) or does the same again. It counts connections.
asio::awaitable<void> racing_server(tcp::acceptor& acceptor, int& accepted,
                                    bool answer_second_connection) {
  std::string buffer;
  auto first = co_await acceptor.async_accept(asio::use_awaitable);
  ++accepted;
  co_await read_request_head(first, buffer);
  std::string answer = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst";
  co_await asio::async_write(first, asio::buffer(answer), asio::use_awaitable);
  co_await read_request_head(first, buffer);
  first.close();

  buffer.clear();
  auto second = co_await acceptor.async_accept(asio::use_awaitable);
  ++accepted;
  co_await read_request_head(second, buffer);
  if (answer_second_connection) {
    std::string retry_answer = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond";
    co_await asio::async_write(second, asio::buffer(retry_answer), asio::use_awaitable);
  } else {
    second.close();
  }
  // Count any further connection: a second retry would be a bug.
  for (;;) {
    auto [error, socket] = co_await acceptor.async_accept(as_result);
    if (error) co_return;
    ++accepted;
  }
}

// A self-signed certificate for 127.0.0.1, made in memory so the TLS tests need no
// files and no openssl binary.
struct SelfSigned {
  SelfSigned() {
    key = EVP_EC_gen("P-256");
    certificate = X509_new();
    X509_set_version(certificate, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(certificate), 1);
    X509_gmtime_adj(X509_getm_notBefore(certificate), -60);
    X509_gmtime_adj(X509_getm_notAfter(certificate), 3600);
    X509_set_pubkey(certificate, key);
    auto* name = X509_get_subject_name(certificate);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
    X509_set_issuer_name(certificate, name);
    X509V3_CTX context;
    X509V3_set_ctx_nodb(&context);
    X509V3_set_ctx(&context, certificate, certificate, nullptr, nullptr, 0);
    auto* alternative_name =
        X509V3_EXT_conf_nid(nullptr, &context, NID_subject_alt_name, "IP:127.0.0.1");
    X509_add_ext(certificate, alternative_name, -1);
    X509_EXTENSION_free(alternative_name);
    X509_sign(certificate, key, EVP_sha256());
  }
  ~SelfSigned() {
    X509_free(certificate);
    EVP_PKEY_free(key);
  }
  EVP_PKEY* key = nullptr;
  X509* certificate = nullptr;
};

// A minimal HTTPS server: handshake, then answer every request with "tls ok".
asio::awaitable<void> serve_tls(tcp::socket socket, asio::ssl::context& context) {
  asio::ssl::stream<tcp::socket> stream(std::move(socket), context);
  auto [handshake_error] = co_await stream.async_handshake(asio::ssl::stream_base::server, as_result);
  if (handshake_error) co_return;  // the verifying client refused our certificate
  std::string buffer;
  for (;;) {
    auto [read_error, size] =
        co_await asio::async_read_until(stream, asio::dynamic_buffer(buffer), "\r\n\r\n", as_result);
    if (read_error) co_return;
    buffer.erase(0, size);
    std::string answer = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\ntls ok";
    co_await asio::async_write(stream, asio::buffer(answer), as_result);
  }
}

asio::awaitable<void> tls_server(tcp::acceptor& acceptor, asio::ssl::context& context,
                                 int& accepted) {
  for (;;) {
    auto [accept_error, socket] = co_await acceptor.async_accept(as_result);
    if (accept_error) co_return;
    ++accepted;
    asio::co_spawn(acceptor.get_executor(), serve_tls(std::move(socket), context), asio::detached);
  }
}

}  // namespace

TEST_CASE("http client: GET and POST round trips with prefix, headers and body") {
  asio::io_context io;
  TestServer test_server(io);
  Client client(io.get_executor(), test_server.url("/api/"), {});
  run_test(io, [&]() -> asio::awaitable<void> {
    auto request = get("/echo?x=1");
    request.headers = {{"X-Test", "get-header"}};
    auto got = co_await client.request(request);
    CHECK_FALSE(got.error);
    CHECK(got.maybe_delivered);
    CHECK(got.response.status == 200);
    CHECK(got.response.body == "GET /api/echo?x=1 ");
    CHECK(got.response.headers["X-Echo"] == "get-header");
    CHECK(got.response.headers["X-Echo-Host"] == "127.0.0.1:" + std::to_string(test_server.endpoint.port()));
    // No Content-Type unless the caller passes one.
    CHECK(got.response.headers["X-Echo-Content-Type"] == "");
    CHECK(got.elapsed > std::chrono::microseconds::zero());

    ClientRequest post;
    post.method = bhttp::verb::post;
    post.target = "/echo";
    post.headers = {{"Content-Type", "application/json"}, {"X-Test", "post-header"}};
    post.body = R"({"prompt":"a cat"})";
    auto posted = co_await client.request(post);
    CHECK_FALSE(posted.error);
    CHECK(posted.response.status == 200);
    CHECK(posted.response.body == R"(POST /api/echo {"prompt":"a cat"})");
    CHECK(posted.response.headers["X-Echo"] == "post-header");
    CHECK(posted.response.headers["X-Echo-Content-Type"] == "application/json");

    // A status the server chose is a complete response, not an error.
    auto failed = co_await client.request(get("/throw"));
    CHECK_FALSE(failed.error);
    CHECK(failed.response.status == 500);
    CHECK(failed.response.body == R"({"error":"internal"})");
  }());
  CHECK(test_server.server.accepted_total() == 1);
}

TEST_CASE("http client: sequential requests reuse one keep-alive connection") {
  asio::io_context io;
  TestServer test_server(io);
  Client client(io.get_executor(), test_server.url(), {});
  run_test(io, [&]() -> asio::awaitable<void> {
    for (int i = 0; i < 20; ++i) {
      auto result = co_await client.request(get("/echo"));
      CHECK_FALSE(result.error);
      CHECK(result.response.status == 200);
    }
  }());
  CHECK(test_server.server.accepted_total() == 1);
}

TEST_CASE("http client: 50 concurrent requests share max_connections=4") {
  asio::io_context io;
  TestServer test_server(io);
  ClientOptions options;
  options.max_connections = 4;
  Client client(io.get_executor(), test_server.url(), options);
  int succeeded = 0;
  int finished = 0;
  run_test(io, [&]() -> asio::awaitable<void> {
    auto executor = co_await asio::this_coro::executor;
    for (int i = 0; i < 50; ++i) {
      asio::co_spawn(executor, [&]() -> asio::awaitable<void> {
        auto result = co_await client.request(get("/slow?ms=10"));
        if (!result.error && result.response.status == 200) ++succeeded;
        ++finished;
      }, asio::detached);
    }
    CHECK(co_await eventually([&] { return finished == 50; }, 3000ms));
  }());
  CHECK(succeeded == 50);
  CHECK(test_server.peak_connections >= 1);
  CHECK(test_server.peak_connections <= 4);
  CHECK(test_server.server.accepted_total() <= 4);
}

TEST_CASE("http client: the deadline ends a slow exchange as a timeout that may have been delivered") {
  asio::io_context io;
  TestServer test_server(io);
  ClientOptions options;
  options.timeout = 200ms;
  Client client(io.get_executor(), test_server.url(), options);
  run_test(io, [&]() -> asio::awaitable<void> {
    auto result = co_await client.request(get("/slow?ms=3000"));
    CHECK(result.error == boost::beast::error::timeout);
    CHECK(result.maybe_delivered);
    CHECK(result.elapsed >= 200ms);
    CHECK(result.elapsed < 1000ms);  // slack for a loaded machine, far below the handler's 3 s
    // The timed-out connection is not reused; the next request opens a fresh one.
    auto next = co_await client.request(get("/echo"));
    CHECK_FALSE(next.error);
    CHECK(next.response.status == 200);
  }());
  CHECK(test_server.server.accepted_total() == 2);
}

TEST_CASE("http client: a response over body_limit is an error") {
  asio::io_context io;
  TestServer test_server(io);
  ClientOptions options;
  options.body_limit = 100;
  Client client(io.get_executor(), test_server.url(), options);
  run_test(io, [&]() -> asio::awaitable<void> {
    ClientRequest request;
    request.method = bhttp::verb::post;
    request.target = "/echo";
    request.body = std::string(1000, 'z');  // echoed back, ten times the limit
    auto result = co_await client.request(request);
    CHECK(result.error == bhttp::error::body_limit);
    CHECK(result.maybe_delivered);
    auto small = co_await client.request(get("/echo"));
    CHECK_FALSE(small.error);
  }());
}

TEST_CASE("http client: a pooled connection the server closed at idle_timeout is replaced") {
  asio::io_context io;
  ServerOptions server_options;
  server_options.idle_timeout = 50ms;
  TestServer test_server(io, server_options);
  Client client(io.get_executor(), test_server.url(), {});
  run_test(io, [&]() -> asio::awaitable<void> {
    auto first = co_await client.request(get("/echo"));
    CHECK_FALSE(first.error);
    CHECK(co_await eventually([&] { return test_server.server.connection_count() == 0; }));
    auto second = co_await client.request(get("/echo"));
    CHECK_FALSE(second.error);
    CHECK(second.response.status == 200);
  }());
  CHECK(test_server.server.accepted_total() == 2);
}

TEST_CASE("http client: a reused connection closed before any response byte is retried once") {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  auto url = "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
  int accepted = 0;

  SUBCASE("the retry on a fresh connection succeeds") {
    asio::co_spawn(io, racing_server(acceptor, accepted, true), asio::detached);
    Client client(io.get_executor(), url, {});
    run_test(io, [&]() -> asio::awaitable<void> {
      auto first = co_await client.request(get("/one"));
      CHECK(first.response.body == "first");
      auto second = co_await client.request(get("/two"));
      CHECK_FALSE(second.error);
      CHECK(second.response.body == "second");
    }());
    CHECK(accepted == 2);
  }
  SUBCASE("a fresh connection that fails the same way is not retried again") {
    asio::co_spawn(io, racing_server(acceptor, accepted, false), asio::detached);
    Client client(io.get_executor(), url, {});
    run_test(io, [&]() -> asio::awaitable<void> {
      auto first = co_await client.request(get("/one"));
      CHECK(first.response.body == "first");
      auto second = co_await client.request(get("/two"));
      CHECK(second.error == bhttp::error::end_of_stream);
      CHECK(second.maybe_delivered);
    }());
    CHECK(accepted == 2);
  }
}

TEST_CASE("http client: connection refused is an error that was not delivered") {
  asio::io_context io;
  unsigned short port = 0;
  {
    // A port that was free a moment ago and has no listener now.
    tcp::acceptor probe(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = probe.local_endpoint().port();
  }
  Client client(io.get_executor(), "http://127.0.0.1:" + std::to_string(port), {});
  run_test(io, [&]() -> asio::awaitable<void> {
    auto result = co_await client.request(get("/"));
    CHECK(result.error == asio::error::connection_refused);
    CHECK_FALSE(result.maybe_delivered);
  }());
}

TEST_CASE("http client: close_idle closes pooled connections") {
  asio::io_context io;
  TestServer test_server(io);
  Client client(io.get_executor(), test_server.url(), {});
  run_test(io, [&]() -> asio::awaitable<void> {
    auto result = co_await client.request(get("/echo"));
    CHECK_FALSE(result.error);
    CHECK(test_server.server.connection_count() == 1);
    client.close_idle();
    CHECK(co_await eventually([&] { return test_server.server.connection_count() == 0; }));
    // The client still works afterwards, on a new connection.
    auto again = co_await client.request(get("/echo"));
    CHECK_FALSE(again.error);
  }());
  CHECK(test_server.server.accepted_total() == 2);
}

TEST_CASE("http client: https with SNI, certificate verification, and reuse") {
  asio::io_context io;
  SelfSigned self_signed;
  asio::ssl::context server_context(asio::ssl::context::tls_server);
  REQUIRE(SSL_CTX_use_certificate(server_context.native_handle(), self_signed.certificate) == 1);
  REQUIRE(SSL_CTX_use_PrivateKey(server_context.native_handle(), self_signed.key) == 1);
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  auto url = "https://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
  int accepted = 0;
  asio::co_spawn(io, tls_server(acceptor, server_context, accepted), asio::detached);

  ClientOptions trusting;
  trusting.connect.verify_tls = false;
  Client unverified(io.get_executor(), url, trusting);
  Client verified(io.get_executor(), url, {});
  run_test(io, [&]() -> asio::awaitable<void> {
    for (int i = 0; i < 3; ++i) {
      auto result = co_await unverified.request(get("/"));
      CHECK_FALSE(result.error);
      CHECK(result.response.body == "tls ok");
    }
    // A self-signed certificate is not in the system's trust store.
    auto refused = co_await verified.request(get("/"));
    CHECK(refused.error);
    CHECK(refused.error.category() == asio::error::get_ssl_category());
    CHECK_FALSE(refused.maybe_delivered);
  }());
  CHECK(accepted == 2);  // three requests on one TLS connection, one refused connection
}

TEST_CASE("http client: https to a plain HTTP server fails before sending") {
  asio::io_context io;
  TestServer test_server(io);
  ClientOptions options;
  options.timeout = 1000ms;
  Client client(io.get_executor(), "https://127.0.0.1:" + std::to_string(test_server.endpoint.port()), options);
  run_test(io, [&]() -> asio::awaitable<void> {
    auto result = co_await client.request(get("/"));
    CHECK(result.error);
    CHECK_FALSE(result.maybe_delivered);
  }());
}

TEST_CASE("http client: bad options and URLs are refused at construction") {
  asio::io_context io;
  CHECK_THROWS_AS(Client(io.get_executor(), "localhost:80", {}), std::invalid_argument);
  ClientOptions no_connections;
  no_connections.max_connections = 0;
  CHECK_THROWS_AS(Client(io.get_executor(), "http://localhost", no_connections),
                  std::invalid_argument);
}

// ---- streaming GET (what downloads use) -------------------------------------------

namespace {

using klingq::http::Connector;
using klingq::http::Interrupt;
using klingq::http::StreamingGet;
using klingq::http::StreamingRequest;

StreamingRequest streaming_request(const tcp::acceptor& acceptor, std::string target) {
  StreamingRequest request;
  auto port = std::to_string(acceptor.local_endpoint().port());
  request.origin = {false, "127.0.0.1", port};
  request.host_header = "127.0.0.1:" + port;
  request.target = std::move(target);
  request.body_limit = 1024 * 1024;
  request.stall_timeout = 5000ms;
  request.deadline = std::chrono::steady_clock::now() + 5000ms;
  return request;
}

// Accepts one connection, keeps the request head it read in `head`, writes `answer`
// and, unless `hold` is set, closes; with `hold` it keeps the socket open and silent
// until the client goes (a stalled origin).
asio::awaitable<void> one_shot_server(tcp::acceptor& acceptor, std::string& head, std::string answer,
                                      bool hold = false) {
  auto socket = co_await acceptor.async_accept(asio::use_awaitable);
  std::string buffer;
  auto [error, size] = co_await asio::async_read_until(socket, asio::dynamic_buffer(buffer), "\r\n\r\n", as_result);
  if (error) co_return;
  head = buffer.substr(0, size);
  co_await asio::async_write(socket, asio::buffer(answer), as_result);
  if (!hold) co_return;
  std::string rest;
  co_await asio::async_read(socket, asio::dynamic_buffer(rest), as_result);  // until the client closes
}

}  // namespace

TEST_CASE("http streaming get: the header first, then the body in the caller's chunks") {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::string body;
  for (int i = 0; i < 10000; ++i) body += static_cast<char>('a' + i % 26);
  std::string head;
  asio::co_spawn(io,
                 one_shot_server(acceptor, head,
                                 "HTTP/1.1 200 OK\r\nContent-Length: 10000\r\nX-Origin: test\r\n\r\n" + body),
                 asio::detached);
  Connector connector(io.get_executor(), {});
  run_test(io, [&]() -> asio::awaitable<void> {
    StreamingGet get(connector);
    auto request = streaming_request(acceptor, "/video.mp4?sig=1");
    request.headers = {{"User-Agent", "klingq-test"}};
    auto error = co_await get.start(request, nullptr);
    REQUIRE_FALSE(error);
    CHECK(get.status() == 200);
    CHECK(get.header("x-origin") == "test");  // names are case-insensitive
    CHECK(get.header("X-Missing").empty());
    REQUIRE(get.content_length());
    CHECK(*get.content_length() == 10000);
    std::string received;
    std::vector<char> chunk(3000);
    int reads = 0;
    while (!get.body_done()) {
      auto [bytes, read_error] = co_await get.read_body(chunk);
      REQUIRE_FALSE(read_error);
      CHECK(bytes <= chunk.size());
      received.append(chunk.data(), bytes);
      ++reads;
    }
    CHECK(received == body);
    CHECK(reads >= 4);  // 10000 bytes through a 3000-byte buffer
  }());
  CHECK(head.rfind("GET /video.mp4?sig=1 HTTP/1.1\r\n", 0) == 0);
  CHECK(head.find("Host: 127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "\r\n") != std::string::npos);
  CHECK(head.find("User-Agent: klingq-test\r\n") != std::string::npos);
  CHECK(head.find("Connection: close\r\n") != std::string::npos);
}

TEST_CASE("http streaming get: a stalled body fails at the stall deadline, long before the exchange's") {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::string head;
  asio::co_spawn(io, one_shot_server(acceptor, head, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial", true),
                 asio::detached);
  Connector connector(io.get_executor(), {});
  run_test(io, [&]() -> asio::awaitable<void> {
    StreamingGet get(connector);
    auto request = streaming_request(acceptor, "/stall.mp4");
    request.stall_timeout = 200ms;
    REQUIRE_FALSE(co_await get.start(request, nullptr));
    std::vector<char> chunk(4096);
    auto started = std::chrono::steady_clock::now();
    auto [bytes, read_error] = co_await get.read_body(chunk);
    auto waited = std::chrono::steady_clock::now() - started;
    CHECK(read_error);
    CHECK(read_error.step == klingq::http::Step::read_body);
    CHECK(klingq::http::is_timeout(read_error.error));
    CHECK(bytes == 7);  // what arrived before the stall is the caller's
    CHECK(waited >= 200ms);
    CHECK(waited < 2000ms);  // slack for a loaded machine, far below the 5 s deadline
  }());
}

TEST_CASE("http streaming get: a body beyond body_limit is an error") {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::string head;
  // No Content-Length: the body runs until the close, so only its bytes can exceed the limit.
  asio::co_spawn(io, one_shot_server(acceptor, head, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + std::string(5000, 'x')),
                 asio::detached);
  Connector connector(io.get_executor(), {});
  run_test(io, [&]() -> asio::awaitable<void> {
    StreamingGet get(connector);
    auto request = streaming_request(acceptor, "/big.mp4");
    request.body_limit = 1000;
    REQUIRE_FALSE(co_await get.start(request, nullptr));
    CHECK_FALSE(get.content_length());
    std::vector<char> chunk(512);
    klingq::http::StreamingError failed;
    std::size_t received = 0;
    while (!get.body_done() && !failed) {
      auto [bytes, read_error] = co_await get.read_body(chunk);
      received += bytes;
      failed = read_error;
    }
    CHECK(klingq::http::is_body_limit(failed.error));
    CHECK(received <= 1000);
  }());
}

TEST_CASE("http streaming get: an interrupt aborts a silent server's wait at once, and later starts too") {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  Interrupt interrupt;
  int accepted = 0;
  // The origin reads the request and never answers; having read it, it pulls the plug
  // the way klingqd's SIGTERM does (the client is then waiting for the header).
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    auto socket = co_await acceptor.async_accept(asio::use_awaitable);
    ++accepted;
    std::string buffer;
    co_await read_request_head(socket, buffer);
    interrupt.trigger();
    std::string rest;
    co_await asio::async_read(socket, asio::dynamic_buffer(rest), as_result);
    for (;;) {
      auto [error, later] = co_await acceptor.async_accept(as_result);
      if (error) co_return;
      ++accepted;
    }
  }, asio::detached);
  Connector connector(io.get_executor(), {});
  run_test(io, [&]() -> asio::awaitable<void> {
    auto started = std::chrono::steady_clock::now();
    {
      StreamingGet get(connector);
      auto error = co_await get.start(streaming_request(acceptor, "/never.mp4"), &interrupt);
      CHECK(error);
      CHECK(error.step == klingq::http::Step::read_header);
      CHECK_FALSE(klingq::http::is_timeout(error.error));
    }
    CHECK(std::chrono::steady_clock::now() - started < 2000ms);  // not the 5 s deadline
    CHECK(interrupt.triggered());
    // Once triggered, a new exchange fails before it connects.
    StreamingGet again(connector);
    auto error = co_await again.start(streaming_request(acceptor, "/never.mp4"), &interrupt);
    CHECK(error.error == asio::error::operation_aborted);
    CHECK(error.step == klingq::http::Step::resolve);
  }());
  CHECK(accepted == 1);
}
