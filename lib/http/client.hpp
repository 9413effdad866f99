// An HTTP/1.1 client on Boost.Beast for the generation API: a pool of keep-alive
// connections to one base URL (http or https through OpenSSL), a deadline on every
// exchange, a size limit on every response body. It classifies nothing: it reports what
// happened on the wire, and lib/api decides what that means. Its connections are opened
// by connect.hpp's Connector, the same path downloads take.
#pragma once

#include "http/connect.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace klingq::http {

struct ClientOptions {
  std::size_t max_connections = 32;           // open connections, idle or busy
  std::chrono::milliseconds timeout{30000};   // connect + write + read of one exchange
  std::size_t body_limit = 8 * 1024 * 1024;   // larger responses are an error
  ConnectOptions connect;                     // how to reach the server (TLS policy), as downloads do
};

struct ClientRequest {
  boost::beast::http::verb method = boost::beast::http::verb::get;
  std::string target;  // path and query, appended to the base URL's path prefix
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;    // sent with Content-Length when non-empty or method is POST
};

struct ClientResponse {
  unsigned status = 0;
  boost::beast::http::fields headers;
  std::string body;
};

struct ClientResult {
  // Empty on a complete response (whatever its status). Otherwise what failed:
  // timeout (boost::beast::error::timeout), connection refused/reset, TLS, parse, ...
  boost::system::error_code error;
  // With an error, what its code alone cannot say ("" when nothing more is known): the
  // certificate problem, or what the proxy answered (connected.hpp's Connected::detail).
  std::string error_detail;
  // True when the request may have reached the server (the write had started), so the
  // caller must assume the server could have acted on it.
  bool maybe_delivered = false;
  ClientResponse response;
  // From the call to its result, including any wait for a free connection.
  std::chrono::microseconds elapsed{0};
};

class Client {
 public:
  // base_url: "http://host:port[/prefix]" or "https://...". Throws std::invalid_argument
  // on a malformed URL, max_connections == 0 or a timeout that is not positive.
  Client(boost::asio::any_io_executor executor, const std::string& base_url,
         ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // One exchange. Waits for a free connection when max_connections are busy. A reused
  // keep-alive connection that turns out closed before any byte of the response is
  // retried once on a fresh connection (safe: the caller's idempotency key is the same).
  boost::asio::awaitable<ClientResult> request(ClientRequest request);

  // Closes idle connections (shutdown).
  void close_idle();

  // How this client connects (proxy, trust store): downloads connect the same way.
  const ConnectOptions& connect_options() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace klingq::http
