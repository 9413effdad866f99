// The pure side of downloads: see download.hpp.
#include "outputs/download.hpp"

#include "http/address.hpp"

#include <stdexcept>

namespace klingq::outputs {
namespace {

// Request targets go on the request line verbatim: a space, a control character or a
// byte beyond ASCII would make the request malformed (or, with CR LF, inject headers).
// The API and CDNs send percent-encoded URLs, so refusing the rest loses nothing.
bool valid_target(std::string_view target) {
  for (unsigned char c : target) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

// "/a/b/c.mp4" + "d.mp4" → "/a/b/d.mp4"; the query of the base does not carry over.
std::string merge_relative(std::string_view base_target, std::string_view relative) {
  auto path = base_target.substr(0, base_target.find('?'));
  auto last_slash = path.rfind('/');
  std::string out(last_slash == std::string_view::npos ? "/" : path.substr(0, last_slash + 1));
  out += relative;
  return out;
}

}  // namespace

std::optional<Url> parse_url(std::string_view text) {
  std::size_t scheme_length = 0;
  if (text.starts_with("http://")) {
    scheme_length = 7;
  } else if (text.starts_with("https://")) {
    scheme_length = 8;
  } else {
    return std::nullopt;
  }
  auto authority_end = text.find_first_of("/?#", scheme_length);
  auto origin = text.substr(0, authority_end);
  http::BaseUrl base;
  try {
    // Same authority rules as api.base_url: brackets for IPv6, a valid port, no userinfo.
    base = http::parse_base_url(origin);
  } catch (const std::invalid_argument&) {
    return std::nullopt;
  }
  std::string target = authority_end == std::string_view::npos ? "" : std::string(text.substr(authority_end));
  if (auto fragment = target.find('#'); fragment != std::string::npos) target.erase(fragment);
  if (target.empty() || target.front() == '?') target.insert(0, "/");
  if (!valid_target(target)) return std::nullopt;
  Url url;
  url.tls = base.tls;
  url.host = base.host;
  url.port = base.port;
  url.host_header = base.host_header;
  url.target = std::move(target);
  return url;
}

std::optional<Url> resolve_location(const Url& base, std::string_view location) {
  // Servers pad header values; the rest must be a URL.
  while (!location.empty() && (location.front() == ' ' || location.front() == '\t')) location.remove_prefix(1);
  while (!location.empty() && (location.back() == ' ' || location.back() == '\t')) location.remove_suffix(1);
  if (location.empty()) return std::nullopt;
  if (location.starts_with("http://") || location.starts_with("https://")) return parse_url(location);
  if (location.starts_with("//")) {
    return parse_url(std::string(base.tls ? "https:" : "http:") + std::string(location));
  }
  // Any other scheme ("ftp:", "data:") is not followed.
  auto scheme_end = location.find(':');
  auto first_separator = location.find_first_of("/?#");
  if (scheme_end != std::string_view::npos && (first_separator == std::string_view::npos || scheme_end < first_separator)) {
    return std::nullopt;
  }
  Url out = base;
  std::string target;
  if (location.front() == '/') {
    target = std::string(location);
  } else if (location.front() == '?') {
    target = std::string(base.target.substr(0, base.target.find('?'))) + std::string(location);
  } else {
    target = merge_relative(base.target, location);
  }
  if (auto fragment = target.find('#'); fragment != std::string::npos) target.erase(fragment);
  if (target.empty()) target = "/";
  if (!valid_target(target)) return std::nullopt;
  out.target = std::move(target);
  return out;
}

std::string redacted(const Url& url) {
  auto path = url.target.substr(0, url.target.find('?'));
  return std::string(url.tls ? "https://" : "http://") + url.host_header + path;
}

std::string redacted(std::string_view text) {
  if (auto url = parse_url(text)) return redacted(*url);
  // Not a URL we understand: show its scheme at most, since anything after it may hold
  // a credential (userinfo, a token in the path or query).
  auto scheme_end = text.find("://");
  if (scheme_end != std::string_view::npos && scheme_end <= 16) return std::string(text.substr(0, scheme_end + 3)) + "...";
  return text.empty() ? std::string("(empty)") : std::string("(not a URL)");
}

OutputPaths output_paths(std::string_view dir, std::int64_t job_id) {
  std::string base(dir);
  // "videos/" and "videos" name the same directory; "/" stays "/".
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  if (base.empty()) base = ".";
  const auto id = std::to_string(job_id);
  const std::string separator = base == "/" ? "" : "/";
  return OutputPaths{base + separator + id + ".mp4", base + separator + "." + id + ".mp4.part"};
}

std::optional<std::string> size_problem(std::optional<std::uint64_t> content_length, std::uint64_t received,
                                        std::uint64_t max_bytes) {
  if (content_length && *content_length > max_bytes) {
    return "Content-Length " + std::to_string(*content_length) + " exceeds outputs.max_bytes " +
           std::to_string(max_bytes);
  }
  if (received > max_bytes) {
    return "body exceeds outputs.max_bytes " + std::to_string(max_bytes);
  }
  if (content_length && received != *content_length) {
    return "received " + std::to_string(received) + " bytes, Content-Length said " + std::to_string(*content_length);
  }
  // No video is empty; a 200 with no body is a broken origin, not a file to keep.
  if (received == 0) return std::string("empty body");
  return std::nullopt;
}

const char* to_string(FailureClass failure) {
  switch (failure) {
    case FailureClass::invalid_url: return "invalid_url";
    case FailureClass::too_large: return "too_large";
    case FailureClass::http_status: return "http_status";
    case FailureClass::redirects: return "redirects";
    case FailureClass::transport: return "transport";
    case FailureClass::size: return "size";
    case FailureClass::filesystem: return "filesystem";
    case FailureClass::interrupted: return "interrupted";
    case FailureClass::proxy_auth: return "proxy_auth";
  }
  return "transport";
}

bool is_retryable(FailureClass failure) {
  switch (failure) {
    case FailureClass::invalid_url:
    case FailureClass::too_large:
    // Every download through the proxy gets the same 407 until its credentials change:
    // retries would only spend the attempts.
    case FailureClass::proxy_auth:
      return false;
    // A 404/403 right after completion can be a CDN that has not caught up yet, and a
    // redirect loop can be a CDN's hiccup: bounded retries cost little.
    case FailureClass::http_status:
    case FailureClass::redirects:
    case FailureClass::transport:
    case FailureClass::size:
    case FailureClass::filesystem:
    case FailureClass::interrupted:
      return true;
  }
  return true;
}

}  // namespace klingq::outputs
