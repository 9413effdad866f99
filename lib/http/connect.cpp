// The connect path of connect.hpp: the TLS policy (one OpenSSL context per Connector),
// the proxy (a CONNECT tunnel for https; http goes in absolute form, which the callers
// write), and resolve, connect, SNI, verification and handshake under one deadline.
// Failures are values in Connected, never exceptions, so that neither the API client
// nor a download has to guard its connect.
#include "http/connect.hpp"

#include "http/address.hpp"
#include "http/connection.hpp"
#include "util/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <optional>
#include <stdexcept>

namespace klingq::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
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

char lower_ascii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower_ascii(x) == lower_ascii(y); });
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = lower_ascii(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Userinfo is percent-encoded in a URL ("p%40ss" for "p@ss").
std::string percent_decoded(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%') {
      int high = i + 2 < text.size() ? hex_value(text[i + 1]) : -1;
      int low = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
      if (high < 0 || low < 0) throw std::invalid_argument("proxy URL: bad percent-encoding in the credentials");
      out.push_back(static_cast<char>(high * 16 + low));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

// "host:port" for a CONNECT line and its Host field, with brackets around IPv6.
std::string authority_of(const std::string& host, const std::string& port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
}

class ProxyCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "klingq.proxy"; }
  std::string message(int value) const override {
    switch (static_cast<ProxyError>(value)) {
      case ProxyError::auth_required: return "proxy authentication required (407)";
      case ProxyError::refused: return "the proxy refused to open the tunnel";
      case ProxyError::bad_response: return "the proxy's answer to CONNECT is not usable";
    }
    return "proxy error";
  }
};

const ProxyCategory& proxy_category() {
  static const ProxyCategory category;
  return category;
}

// The first certificate the chain check refused, as OpenSSL's verify callback saw it.
struct VerifyFailure {
  int error = X509_V_OK;
  int depth = 0;
  std::string subject;
};

}  // namespace

boost::system::error_code make_error_code(ProxyError error) {
  return {static_cast<int>(error), proxy_category()};
}

bool is_proxy_auth_required(const error_code& error) {
  return error == make_error_code(ProxyError::auth_required);
}

std::string basic_authorization(std::string_view user_colon_password) {
  std::string encoded(4 * ((user_colon_password.size() + 2) / 3) + 1, '\0');
  int length = ::EVP_EncodeBlock(reinterpret_cast<unsigned char*>(encoded.data()),
                                 reinterpret_cast<const unsigned char*>(user_colon_password.data()),
                                 static_cast<int>(user_colon_password.size()));
  encoded.resize(static_cast<std::size_t>(length));
  return "Basic " + encoded;
}

Proxy parse_proxy_url(std::string_view url) {
  std::string_view rest = url;
  if (auto scheme_end = rest.find("://"); scheme_end != std::string_view::npos) {
    auto scheme = rest.substr(0, scheme_end);
    if (iequals(scheme, "https")) {
      throw std::invalid_argument("proxy URL: https:// proxies are not supported (klingq speaks plain HTTP to the "
                                  "proxy and TLS through its tunnel); use http://");
    }
    if (!iequals(scheme, "http")) {
      throw std::invalid_argument("proxy URL: unsupported scheme '" + std::string(scheme) + "' (only http://)");
    }
    rest.remove_prefix(scheme_end + 3);
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  Proxy proxy;
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    auto userinfo = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    auto colon = userinfo.find(':');
    auto user = percent_decoded(userinfo.substr(0, colon));
    auto password = colon == std::string_view::npos ? std::string() : percent_decoded(userinfo.substr(colon + 1));
    if (user.empty()) throw std::invalid_argument("proxy URL: credentials without a user name");
    proxy.authorization = basic_authorization(user + ":" + password);
  }
  if (rest.find_first_of("/?#@ ") != std::string_view::npos) {
    throw std::invalid_argument("proxy URL: expected http://[user:password@]host[:port], with no path");
  }
  if (rest.empty()) throw std::invalid_argument("proxy URL: no host");
  if (rest.front() == '[' && rest.back() == ']') {
    proxy.host = std::string(rest.substr(1, rest.size() - 2));
    proxy.port = "80";
  } else if (rest.find(':') != std::string_view::npos) {
    try {
      auto host_port = parse_host_port(rest);
      proxy.host = host_port.host;
      proxy.port = host_port.port;
    } catch (const std::invalid_argument&) {
      throw std::invalid_argument("proxy URL: bad host or port '" + std::string(rest) + "'");
    }
    if (proxy.port == "0") throw std::invalid_argument("proxy URL: port 0");
  } else {
    proxy.host = std::string(rest);
    proxy.port = "80";
  }
  if (proxy.host.empty()) throw std::invalid_argument("proxy URL: no host");
  proxy.display = "http://" + std::string(proxy.authorization.empty() ? "" : "<redacted>@") +
                  authority_of(proxy.host, proxy.port);
  return proxy;
}

bool no_proxy_matches(std::string_view no_proxy, std::string_view host, std::string_view port) {
  std::size_t at = 0;
  while (at < no_proxy.size()) {
    auto end = no_proxy.find_first_of(", \t", at);
    if (end == std::string_view::npos) end = no_proxy.size();
    auto entry = no_proxy.substr(at, end - at);
    at = end + 1;
    if (entry.empty()) continue;
    if (entry == "*") return true;
    // An optional ":port": after "]" for an IPv6 literal, else after the only colon.
    std::string_view entry_port;
    if (entry.front() == '[') {
      auto close = entry.find(']');
      if (close == std::string_view::npos) continue;
      if (close + 1 < entry.size() && entry[close + 1] == ':') entry_port = entry.substr(close + 2);
      entry = entry.substr(1, close - 1);
    } else if (auto colon = entry.find(':'); colon != std::string_view::npos && entry.find(':', colon + 1) == std::string_view::npos) {
      entry_port = entry.substr(colon + 1);
      entry = entry.substr(0, colon);
    }
    if (!entry_port.empty() && entry_port != port) continue;
    if (entry.starts_with("*.")) entry.remove_prefix(1);
    if (entry.starts_with(".")) entry.remove_prefix(1);
    if (entry.empty()) continue;
    if (iequals(host, entry)) return true;
    if (host.size() > entry.size() && host[host.size() - entry.size() - 1] == '.' &&
        iequals(host.substr(host.size() - entry.size()), entry)) {
      return true;
    }
  }
  return false;
}

const Proxy* proxy_for(const ConnectOptions& options, const Origin& origin) {
  const auto& proxy = origin.tls ? options.https_proxy : options.http_proxy;
  if (!proxy) return nullptr;
  if (no_proxy_matches(options.no_proxy, origin.host, origin.port)) return nullptr;
  return &*proxy;
}

// The TLS policy, for every https connection klingq opens.
struct Connector::Tls {
  explicit Tls(const ConnectOptions& options) : context(ssl::context::tls_client) {
    // TLS 1.0 and 1.1 are deprecated (RFC 8996); no API or CDN we talk to needs them.
    ::SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_2_VERSION);
    if (options.verify_tls) {
      context.set_default_verify_paths(setup_error);
      // A private CA is trusted besides the system's, so that a CDN with a public
      // certificate still verifies when the API sits behind the private one.
      if (!setup_error && !options.ca_file.empty()) {
        context.load_verify_file(options.ca_file, setup_error);
        if (setup_error) setup_detail = "cannot load the CA file " + options.ca_file + ": " + setup_error.message();
      }
      if (!setup_error && !options.ca_dir.empty()) {
        context.add_verify_path(options.ca_dir, setup_error);
        if (setup_error) setup_detail = "cannot use the CA directory " + options.ca_dir + ": " + setup_error.message();
      }
      context.set_verify_mode(ssl::verify_peer);
    } else {
      context.set_verify_mode(ssl::verify_none);
    }
  }
  ssl::context context;
  // A trust store that would not load: every https connect fails with it (as a TLS
  // failure, the step where a missing trust store would otherwise show).
  error_code setup_error;
  std::string setup_detail;
};

std::string Connector::check_trust_store(const ConnectOptions& options) {
  Tls tls(options);
  if (!tls.setup_error) return {};
  return tls.setup_detail.empty() ? "cannot load the system's trust store: " + tls.setup_error.message()
                                  : tls.setup_detail;
}

Connector::Connector(asio::any_io_executor executor, ConnectOptions options)
    : executor_(std::move(executor)), options_(options) {}

Connector::~Connector() = default;

namespace {

// Opens the tunnel on a connected socket: CONNECT, then the proxy's status line and
// header. A 2xx leaves the stream at the first byte of the tunnel. Under the stream's
// deadline, like the connect before it.
asio::awaitable<void> open_tunnel(beast::tcp_stream& stream, const Proxy& proxy, const Origin& origin,
                                  Connected& out) {
  const auto authority = authority_of(origin.host, origin.port);
  std::string request = "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n";
  if (!proxy.authorization.empty()) request += "Proxy-Authorization: " + proxy.authorization + "\r\n";
  request += "\r\n";
  auto [write_error, written] = co_await asio::async_write(stream, asio::buffer(request), as_result);
  if (write_error) {
    out.error = write_error;
    out.detail = "sending CONNECT to the proxy " + proxy.display;
    co_return;
  }
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::empty_body> parser;
  parser.header_limit(16 * 1024);
  parser.skip(true);  // a 2xx to CONNECT has no body: the tunnel follows the header
  auto [read_error, read] = co_await bhttp::async_read_header(stream, buffer, parser, as_result);
  if (read_error) {
    out.error = read_error == bhttp::error::end_of_stream || read_error == asio::error::eof ||
                        read_error == beast::error::timeout || read_error == asio::error::connection_reset
                    ? read_error
                    : make_error_code(ProxyError::bad_response);
    out.detail = "reading the answer of the proxy " + proxy.display + " to CONNECT: " + read_error.message();
    co_return;
  }
  const auto status = parser.get().result_int();
  const auto reason = std::string(parser.get().reason());
  const auto answered = "the proxy " + proxy.display + " answered " + std::to_string(status) + " " + reason +
                        " to CONNECT " + authority;
  if (status == 407) {
    out.error = make_error_code(ProxyError::auth_required);
    out.detail = answered + (proxy.authorization.empty()
                                 ? " (no proxy credentials are configured: api.proxy_credentials_file or the URL's user:password)"
                                 : " (it refused the configured proxy credentials)");
  } else if (status < 200 || status >= 300) {
    out.error = make_error_code(ProxyError::refused);
    out.detail = answered;
  } else if (buffer.size() != 0) {
    // The server cannot have spoken yet (we have not sent a byte through the tunnel).
    out.error = make_error_code(ProxyError::bad_response);
    out.detail = answered + ", followed by unexpected bytes";
  }
}

}  // namespace

asio::awaitable<Connected> Connector::connect(const Origin& origin, Clock::time_point deadline,
                                              Interrupt* interrupt) {
  Connected out;
  DisarmOnExit disarm{interrupt};
  if (interrupt && interrupt->triggered()) {
    out.error = asio::error::operation_aborted;
    co_return out;
  }
  const Proxy* proxy = proxy_for(options_, origin);
  // Through a proxy, the proxy is what we resolve and connect to; the origin's name is
  // still the one sent in SNI and verified in the certificate.
  const auto& dial_host = proxy ? proxy->host : origin.host;
  const auto& dial_port = proxy ? proxy->port : origin.port;
  const auto via = proxy ? " (via the proxy " + proxy->display + ")" : std::string();

  // tcp_stream's own timer does not cover resolving, so a timer cancels the resolver.
  // Both are shared with the handlers, which may run after this frame is gone.
  auto resolver = std::make_shared<tcp::resolver>(executor_);
  asio::steady_timer resolve_timer(executor_, deadline);
  resolve_timer.async_wait([resolver](const error_code& error) {
    if (!error) resolver->cancel();
  });
  if (interrupt) interrupt->arm([resolver] { resolver->cancel(); });
  auto [resolve_error, endpoints] = co_await resolver->async_resolve(dial_host, dial_port, as_result);
  resolve_timer.cancel();
  if (resolve_error) {
    out.error = resolve_error == asio::error::operation_aborted && Clock::now() >= deadline
                    ? error_code(beast::error::timeout)
                    : resolve_error;
    if (proxy) out.detail = "cannot resolve the proxy " + proxy->display;
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
    if (proxy) out.detail = "cannot connect to the proxy " + proxy->display;
    co_return out;
  }
  // Requests are small and answered at once: do not let Nagle hold the last segment.
  error_code ignored;
  lowest.socket().set_option(tcp::no_delay(true), ignored);
  // https through a proxy: a tunnel first, then TLS with the origin inside it. Plain
  // http needs none: the caller writes its requests in absolute form to the proxy.
  if (proxy && origin.tls) {
    co_await open_tunnel(lowest, *proxy, origin, out);
    if (out.error) co_return out;
  }

  if (connection->tls) {
    out.failed_step = Step::tls;
    if (tls_->setup_error) {
      out.error = tls_->setup_error;
      out.detail = tls_->setup_detail;
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
    auto failure = std::make_shared<VerifyFailure>();
    if (options_.verify_tls) {
      // OpenSSL checks the name (or address) with the chain, so a mismatch is reported
      // like any other certificate problem (X509_V_ERR_HOSTNAME_MISMATCH).
      auto* param = ::SSL_get0_param(stream.native_handle());
      int set = address_error ? ::X509_VERIFY_PARAM_set1_host(param, origin.host.c_str(), origin.host.size())
                              : ::X509_VERIFY_PARAM_set1_ip_asc(param, origin.host.c_str());
      if (set != 1) {
        out.error = last_openssl_error();
        co_return out;
      }
      stream.set_verify_callback([failure](bool preverified, ssl::verify_context& context) {
        if (!preverified && failure->error == X509_V_OK) {
          auto* store = context.native_handle();
          failure->error = ::X509_STORE_CTX_get_error(store);
          failure->depth = ::X509_STORE_CTX_get_error_depth(store);
          if (X509* certificate = ::X509_STORE_CTX_get_current_cert(store)) {
            char subject[256] = {};
            ::X509_NAME_oneline(::X509_get_subject_name(certificate), subject, sizeof subject);
            failure->subject = subject;
          }
        }
        return preverified;
      });
    }
    auto [handshake_error] = co_await stream.async_handshake(ssl::stream_base::client, as_result);
    if (handshake_error) {
      out.error = handshake_error;
      if (failure->error != X509_V_OK) {
        out.detail = std::string("certificate of ") + origin.host + " not trusted: " +
                     ::X509_verify_cert_error_string(failure->error) + " (depth " + std::to_string(failure->depth) +
                     (failure->subject.empty() ? "" : ", subject " + failure->subject) + ")" + via;
        // Every request fails the same way until the CA or the certificate changes: say
        // it once per problem, not once per request.
        if (out.detail != last_logged_tls_failure_) {
          last_logged_tls_failure_ = out.detail;
          log::error("tls_verify_failed", {{"host", origin.host}, {"error", out.detail}});
        }
      } else if (proxy) {
        out.detail = "TLS through the proxy " + proxy->display;
      }
      co_return out;
    }
  }
  out.connection = std::move(connection);
  co_return out;
}

}  // namespace klingq::http
