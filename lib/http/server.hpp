// A small HTTP/1.1 server on Boost.Beast, shared by the webhook receiver, the
// metrics/health endpoint and klingq-sim. One coroutine per connection; every read and
// write has a deadline; every request body has a size limit; the request handler is a
// plain coroutine `Request -> Response` (or `Request -> Reply`, to choose how the
// response is delivered) that knows nothing about sockets.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace klingq::http {

using Request = boost::beast::http::request<boost::beast::http::string_body>;
using Response = boost::beast::http::response<boost::beast::http::string_body>;

// The application's side: gets a complete request, returns the response. Runs on the
// server's executor; keep-alive and Content-Length are handled by the server.
using Handler = std::function<boost::asio::awaitable<Response>(Request)>;

// How the server puts a handler's response on the wire. Every ordinary handler wants
// `write`. The other two make this server behave like a peer that breaks mid-exchange,
// which a test double needs so that its clients' recovery can be tested over real TCP.
// Both end the connection with a reset (RST, as from a crashed host), not a FIN.
enum class Delivery {
  write,           // the response, then keep-alive or close as the exchange allows
  reset,           // nothing at all: the connection is reset instead of answered
  reset_mid_body,  // the status line and headers with the whole body's Content-Length,
                   // then only Reply::body_bytes_before_reset bytes of it, then a reset
};

// A response and how to deliver it; what a ReplyHandler returns.
struct Reply {
  Response response;
  Delivery delivery = Delivery::write;
  std::size_t body_bytes_before_reset = 0;  // reset_mid_body only; at most the body's size
};

// A Handler that also chooses the Delivery.
using ReplyHandler = std::function<boost::asio::awaitable<Reply>(Request)>;

struct ServerOptions {
  std::size_t body_limit = 1024 * 1024;            // larger bodies get 413
  std::chrono::milliseconds read_timeout{10000};   // whole request, headers and body
  std::chrono::milliseconds write_timeout{10000};
  std::chrono::milliseconds idle_timeout{60000};   // keep-alive wait for the next request
  std::size_t max_connections = 4096;              // beyond this, new sockets are closed
  // When set, every request reaches the handler with the connection's remote address
  // ("127.0.0.1", "::1") in this header; one the client sent under that name is removed
  // first, so the handler can trust it (the console's failed-login limit keys on it).
  std::string peer_address_header;
};

class Server {
 public:
  Server(boost::asio::any_io_executor executor, ServerOptions options, Handler handler);
  Server(boost::asio::any_io_executor executor, ServerOptions options, ReplyHandler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds "host:port" (port 0 picks a free one) and returns the bound endpoint.
  // Throws std::system_error naming the address when binding fails.
  boost::asio::ip::tcp::endpoint listen(const std::string& host_port);
  // Starts accepting on the executor. Call after listen().
  void start();
  // Stops accepting and closes idle connections; requests being handled finish and
  // their connections close after the response. Safe to call from the executor only.
  void stop();
  // Connections currently open.
  std::size_t connection_count() const;
  // Connections accepted since construction, including those refused for
  // max_connections (a metrics counter; tests use it to see keep-alive reuse).
  std::size_t accepted_total() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// A response with the given status, content type and body, version 1.1.
Response make_response(unsigned status, std::string body,
                       std::string content_type = "application/json");

}  // namespace klingq::http
