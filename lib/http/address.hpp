// Parsing of the addresses the HTTP server listens on ("host:port", "[::1]:port") and
// the base URLs the client talks to ("https://host[:port][/prefix]"). Pure functions
// with no I/O, so both sides agree on the syntax and tests need no socket.
#pragma once

#include <string>
#include <string_view>

namespace klingq::http {

struct HostPort {
  std::string host;  // without the brackets of an IPv6 literal
  std::string port;  // decimal, "0" allowed (bind picks a free port)
};

// "host:port" or "[v6-address]:port". Throws std::invalid_argument naming the text when
// the port is missing, not a number or above 65535, or the host is empty.
HostPort parse_host_port(std::string_view text);

struct BaseUrl {
  bool tls = false;          // https
  std::string host;          // for resolving and for TLS SNI and verification
  std::string port;          // explicit, or 80 / 443 from the scheme
  std::string host_header;   // what goes into Host: host, plus ":port" when not the default
  std::string path_prefix;   // "" or "/v1" (never a trailing slash)
};

// "http://host[:port][/prefix]" or "https://...". Throws std::invalid_argument on
// another scheme, an empty host, a bad port, or a query/fragment in the base URL.
BaseUrl parse_base_url(std::string_view text);

// The request target: the base URL's prefix followed by the caller's path and query,
// with exactly one slash between them and "/" when both are empty.
std::string join_target(std::string_view path_prefix, std::string_view target);

}  // namespace klingq::http
