// Address and URL syntax shared by the HTTP server and client; see address.hpp.
#include "http/address.hpp"

#include <charconv>
#include <stdexcept>

namespace klingq::http {
namespace {

// Ports are plain decimal in 0..65535; anything else is a configuration mistake that
// should name the text rather than surface later as a resolver error.
bool valid_port(std::string_view port) {
  if (port.empty() || port.size() > 5) return false;
  unsigned value = 0;
  auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
  return error == std::errc{} && end == port.data() + port.size() && value <= 65535;
}

[[noreturn]] void fail(std::string_view what, std::string_view text) {
  throw std::invalid_argument(std::string(what) + ": \"" + std::string(text) + "\"");
}

// Splits "host[:port]" / "[v6][:port]"; port is empty when absent.
HostPort split_authority(std::string_view authority, std::string_view whole) {
  HostPort out;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) fail("unterminated IPv6 literal", whole);
    out.host = std::string(authority.substr(1, close - 1));
    auto rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') fail("unexpected text after IPv6 literal", whole);
      out.port = std::string(rest.substr(1));
      if (out.port.empty()) fail("empty port", whole);
    }
  } else {
    auto colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      // A bare IPv6 address has several colons; it must be bracketed to carry a port.
      if (authority.find(':') != colon) fail("IPv6 addresses need brackets, as in [::1]:8080", whole);
      out.host = std::string(authority.substr(0, colon));
      out.port = std::string(authority.substr(colon + 1));
      if (out.port.empty()) fail("empty port", whole);
    } else {
      out.host = std::string(authority);
    }
  }
  if (out.host.empty()) fail("empty host", whole);
  if (!out.port.empty() && !valid_port(out.port)) fail("bad port", whole);
  return out;
}

}  // namespace

HostPort parse_host_port(std::string_view text) {
  auto out = split_authority(text, text);
  if (out.port.empty()) fail("missing port (expected host:port)", text);
  return out;
}

BaseUrl parse_base_url(std::string_view text) {
  BaseUrl out;
  std::string_view rest;
  if (text.substr(0, 7) == "http://") {
    rest = text.substr(7);
  } else if (text.substr(0, 8) == "https://") {
    out.tls = true;
    rest = text.substr(8);
  } else {
    fail("base URL must start with http:// or https://", text);
  }
  if (rest.find_first_of("?#") != std::string_view::npos) {
    fail("base URL must not carry a query or fragment", text);
  }
  if (rest.find('@') != std::string_view::npos) {
    // Credentials in URLs end up in logs; the API key travels in a header instead.
    fail("base URL must not carry user information", text);
  }
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  auto parts = split_authority(authority, text);
  out.host = parts.host;
  std::string default_port = out.tls ? "443" : "80";
  out.port = parts.port.empty() ? default_port : parts.port;
  bool v6 = out.host.find(':') != std::string::npos;
  out.host_header = v6 ? "[" + out.host + "]" : out.host;
  if (out.port != default_port) out.host_header += ":" + out.port;
  if (slash != std::string_view::npos) {
    auto prefix = rest.substr(slash);
    while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
    out.path_prefix = std::string(prefix);
  }
  return out;
}

std::string join_target(std::string_view path_prefix, std::string_view target) {
  std::string out(path_prefix);
  if (target.empty()) {
    if (out.empty()) out = "/";
    return out;
  }
  // "?a=b" attaches to the prefix itself; a path gets exactly one separating slash.
  if (target.front() != '/' && target.front() != '?') out += '/';
  if (out.empty() && target.front() == '?') out = "/";
  out += target;
  return out;
}

}  // namespace klingq::http
