// The connect path of connect.hpp: the TLS policy (one OpenSSL context per Connector)
// and resolve, connect, SNI, verification and handshake under one deadline. Failures
// are values in Connected, never exceptions, so that neither the API client nor a
// download has to guard its connect.
#include "http/connect.hpp"

#include "http/connection.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <optional>

namespace klingq::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

// Failures are values: the caller gets them in Connected, never as exceptions.
constexpr auto as_result = asio::as_tuple(asio::use_awaitable);

error_code last_openssl_error() {
  return error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category());
}

// Disarms the caller's interrupt when connect() returns, however it returns: a hook
// left armed would point at a resolver or a stream that no longer exists.
struct DisarmOnExit {
  Interrupt* interrupt;
  ~DisarmOnExit() {
    if (interrupt) interrupt->disarm();
  }
};

}  // namespace

// The TLS policy, for every https connection klingq opens.
struct Connector::Tls {
  explicit Tls(const ConnectOptions& options) : context(ssl::context::tls_client) {
    // TLS 1.0 and 1.1 are deprecated (RFC 8996); no API or CDN we talk to needs them.
    ::SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_2_VERSION);
    if (options.verify_tls) {
      context.set_default_verify_paths(setup_error);
      context.set_verify_mode(ssl::verify_peer);
    } else {
      context.set_verify_mode(ssl::verify_none);
    }
  }
  ssl::context context;
  // A trust store that would not load: every https connect fails with it (as a TLS
  // failure, the step where a missing trust store would otherwise show).
  error_code setup_error;
};

Connector::Connector(asio::any_io_executor executor, ConnectOptions options)
    : executor_(std::move(executor)), options_(options) {}

Connector::~Connector() = default;

asio::awaitable<Connected> Connector::connect(const Origin& origin, Clock::time_point deadline,
                                              Interrupt* interrupt) {
  Connected out;
  DisarmOnExit disarm{interrupt};
  if (interrupt && interrupt->triggered()) {
    out.error = asio::error::operation_aborted;
    co_return out;
  }

  // tcp_stream's own timer does not cover resolving, so a timer cancels the resolver.
  // Both are shared with the handlers, which may run after this frame is gone.
  auto resolver = std::make_shared<tcp::resolver>(executor_);
  asio::steady_timer resolve_timer(executor_, deadline);
  resolve_timer.async_wait([resolver](const error_code& error) {
    if (!error) resolver->cancel();
  });
  if (interrupt) interrupt->arm([resolver] { resolver->cancel(); });
  auto [resolve_error, endpoints] = co_await resolver->async_resolve(origin.host, origin.port, as_result);
  resolve_timer.cancel();
  if (resolve_error) {
    out.error = resolve_error == asio::error::operation_aborted && Clock::now() >= deadline
                    ? error_code(beast::error::timeout)
                    : resolve_error;
    co_return out;
  }

  out.failed_step = Step::connect;
  auto connection = std::make_unique<Connection>();
  if (origin.tls) {
    if (!tls_) tls_ = std::make_unique<Tls>(options_);
    connection->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(executor_, tls_->context);
  } else {
    connection->plain = std::make_unique<beast::tcp_stream>(executor_);
  }
  auto& lowest = connection->lowest();
  // Closing the socket ends a connect or handshake in progress at once.
  if (interrupt) interrupt->arm([&lowest] { lowest.close(); });
  lowest.expires_at(deadline);
  auto [connect_error, endpoint] = co_await lowest.async_connect(endpoints, as_result);
  if (connect_error) {
    out.error = connect_error;
    co_return out;
  }
  // Requests are small and answered at once: do not let Nagle hold the last segment.
  error_code ignored;
  lowest.socket().set_option(tcp::no_delay(true), ignored);

  if (connection->tls) {
    out.failed_step = Step::tls;
    if (tls_->setup_error) {
      out.error = tls_->setup_error;
      co_return out;
    }
    auto& stream = *connection->tls;
    error_code address_error;
    asio::ip::make_address(origin.host, address_error);
    // SNI carries names only (RFC 6066); virtual hosts on one IP need it to pick the
    // certificate.
    if (address_error && !::SSL_set_tlsext_host_name(stream.native_handle(), origin.host.c_str())) {
      out.error = last_openssl_error();
      co_return out;
    }
    if (options_.verify_tls) stream.set_verify_callback(ssl::host_name_verification(origin.host));
    auto [handshake_error] = co_await stream.async_handshake(ssl::stream_base::client, as_result);
    if (handshake_error) {
      out.error = handshake_error;
      co_return out;
    }
  }
  out.connection = std::move(connection);
  co_return out;
}

}  // namespace klingq::http
