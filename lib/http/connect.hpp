// The one way klingq opens an outgoing connection: resolve, TCP connect under a
// deadline, and for https a TLS handshake with SNI, the certificate chain and the host
// name verified against one TLS policy. The API client's pool (client.hpp) and the
// video downloads (streaming.hpp, used by lib/outputs) both connect through a
// Connector, so a change of policy (a proxy, a private CA: api.proxy, api.ca_file)
// lands here once and holds for both.
//
// This header stays light on purpose (no Beast): lib/outputs includes it. The connected
// stream itself (Beast types) is in connection.hpp, which only lib/http's .cpp files use.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <boost/system/error_code.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace klingq::http {

// An HTTP proxy that connections go through: https origins through a CONNECT tunnel
// (RFC 9110 section 9.3.6), http origins by sending the request in absolute form.
struct Proxy {
  std::string host;  // name or address literal (no IPv6 brackets)
  std::string port;
  // The Proxy-Authorization value ("Basic ..."), empty for none. A secret: it goes on
  // the wire to the proxy and nowhere else (never into a log or a message).
  std::string authorization;
  std::string display;  // the proxy's URL without any credentials, for logs and messages
};

// "http://[user[:password]@]host[:port][/]" (port 80 when absent). The user and password
// are percent-decoded and become `authorization`. Throws std::invalid_argument saying
// what is wrong, never repeating the credentials; https:// proxies are refused (TLS to
// the proxy itself is not supported).
Proxy parse_proxy_url(std::string_view url);
// "Basic " + base64("user:password"), for a Proxy-Authorization field.
std::string basic_authorization(std::string_view user_colon_password);
// A NO_PROXY list (comma or space separated): "*" matches every host; "example.com" or
// ".example.com" matches that host and its subdomains; an address literal matches
// itself; an entry with ":port" matches only that port. Names compare case-blind.
bool no_proxy_matches(std::string_view no_proxy, std::string_view host, std::string_view port);

// How to reach any origin. One struct for the API client and downloads alike, so that
// the proxy and the trust store are set once and apply to both.
struct ConnectOptions {
  bool verify_tls = true;  // https: check the certificate chain and host name (false: tests only)
  std::optional<Proxy> https_proxy;  // https origins go through this one (CONNECT)
  std::optional<Proxy> http_proxy;   // http origins go through this one (absolute form)
  std::string no_proxy;              // origins matching this list connect directly
  // Trusted in addition to the system's store: a PEM file of CA certificates, and a
  // directory of hashed CA certificates (c_rehash). Empty: the system's store only.
  std::string ca_file;
  std::string ca_dir;
};

// Where to connect: a URL's scheme and authority.
struct Origin {
  bool tls = false;   // https
  std::string host;   // name or address literal (no IPv6 brackets); also the SNI name and the name verified
  std::string port;   // decimal or a service name
};

// The proxy `origin` goes through, or null when it connects directly.
const Proxy* proxy_for(const ConnectOptions& options, const Origin& origin);

// What a proxy answered instead of opening the tunnel. auth_required (a 407) means the
// proxy refused our credentials or wants some: no retry helps until the config changes.
enum class ProxyError {
  auth_required = 1,  // 407 Proxy Authentication Required
  refused,            // any other non-2xx answer to CONNECT (403 by policy, 502 upstream)
  bad_response,       // not an HTTP response, or bytes after it before the tunnel was used
};
boost::system::error_code make_error_code(ProxyError error);
bool is_proxy_auth_required(const boost::system::error_code& error);

// The step of reaching a server and talking to it that failed, for error messages
// ("cannot resolve ...", "TLS with ..."): the error_code alone does not say it.
enum class Step {
  resolve,
  connect,
  tls,          // setting up or doing the handshake, including certificate checks
  send,         // writing the request
  read_header,  // reading the response's status line and header fields
  read_body,
};

// Lets another coroutine on the same executor abort whatever network operation a
// connect or an exchange is waiting on (klingqd's shutdown cuts a download short this
// way). Triggering cancels the resolve in progress or closes the socket, so the waiting
// coroutine resumes at once with an error; an operation that starts after the trigger
// fails at once too. Not for use across threads.
class Interrupt {
 public:
  void trigger() {
    triggered_ = true;
    if (hook_) hook_();
  }
  bool triggered() const { return triggered_; }

  // For lib/http: what trigger() must do while an operation is in progress. Runs the
  // hook at once when already triggered. The hook must stay valid until disarm().
  void arm(std::function<void()> hook) {
    hook_ = std::move(hook);
    if (triggered_) hook_();
  }
  void disarm() { hook_ = nullptr; }

 private:
  bool triggered_ = false;
  std::function<void()> hook_;  // closes what the current operation waits on
};

struct Connected;  // connection.hpp: the error, or an open plain or TLS stream

// Opens connections with one ConnectOptions on one executor. The TLS context is built
// on the first https connect and shared by every later one (loading the trust store
// per connection would cost milliseconds each). Used on its executor only.
class Connector {
 public:
  Connector(boost::asio::any_io_executor executor, ConnectOptions options);
  ~Connector();
  Connector(const Connector&) = delete;
  Connector& operator=(const Connector&) = delete;

  const boost::asio::any_io_executor& executor() const { return executor_; }
  const ConnectOptions& options() const { return options_; }

  // Loads the trust store these options ask for (the system's, api.ca_file, api.ca_dir)
  // as the first https connect would: "" when it loads, else what is wrong. For a check
  // at start-up, so that a bad CA file is a config error rather than a failing request.
  static std::string check_trust_store(const ConnectOptions& options);

  // Resolve, connect and (https) handshake, all before the deadline. Never throws for
  // network or TLS problems: they are in the result. While it runs, `interrupt` (may be
  // null) aborts it; it is disarmed again on return, whatever the outcome.
  // Callers include connection.hpp (lib/http only) to use the result.
  boost::asio::awaitable<Connected> connect(const Origin& origin,
                                            std::chrono::steady_clock::time_point deadline,
                                            Interrupt* interrupt = nullptr);

 private:
  struct Tls;  // the OpenSSL context, built on first use
  boost::asio::any_io_executor executor_;
  ConnectOptions options_;
  std::unique_ptr<Tls> tls_;
  std::string last_logged_tls_failure_;  // a certificate problem is logged once until it changes
};

}  // namespace klingq::http
