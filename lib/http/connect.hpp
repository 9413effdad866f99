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

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace klingq::http {

// How to reach any origin. One struct for the API client and downloads alike, so that
// options added later (an HTTP CONNECT proxy, a CA file) are set once and apply to both.
struct ConnectOptions {
  bool verify_tls = true;  // https: check the certificate chain and host name (false: tests only)
};

// Where to connect: a URL's scheme and authority.
struct Origin {
  bool tls = false;   // https
  std::string host;   // name or address literal (no IPv6 brackets); also the SNI name and the name verified
  std::string port;   // decimal or a service name
};

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
};

}  // namespace klingq::http
