// The pure decisions of downloading a finished video (outputs.download), kept apart from
// the I/O in downloader.cpp so that they are unit-tested without a socket or a file:
// which URLs are fetched and how a redirect's Location resolves, what a URL looks like
// in a log line, where a job's file and its temporary part file live, whether a body's
// size is acceptable, and which failures are worth another attempt.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace klingq::outputs {

// An absolute http(s) URL split for a request.
struct Url {
  bool tls = false;          // https
  std::string host;          // without the brackets of an IPv6 literal
  std::string port;          // explicit, or 80 / 443 from the scheme
  std::string host_header;   // what goes into Host: host, plus ":port" when not the default
  std::string target;        // path and query, never empty ("/" at least); no fragment
};

// nullopt unless `text` is an absolute http:// or https:// URL with a host and a valid
// port. Userinfo ("user:pass@") is refused: a video URL has no business carrying it.
std::optional<Url> parse_url(std::string_view text);

// The URL a redirect's Location header names, resolved against the URL that answered:
// absolute ("https://..."), scheme-relative ("//host/..."), absolute-path ("/...") or
// relative ("part.mp4"). nullopt when it cannot be resolved to an http(s) URL.
std::optional<Url> resolve_location(const Url& base, std::string_view location);

// scheme://host[:port]/path without the query: signed CDN URLs carry their credential
// in the query string, and logs, metrics and output_error must never hold one.
std::string redacted(const Url& url);
// The same for a URL that may not even parse (what the API sent), for error messages.
std::string redacted(std::string_view text);

// Where job `job_id`'s video goes: dir/<id>.mp4, written first to dir/.<id>.mp4.part
// (a dot file, so that tools watching dir for *.mp4 never see a partial video).
struct OutputPaths {
  std::string final_path;
  std::string part_path;
};
OutputPaths output_paths(std::string_view dir, std::int64_t job_id);

// Is a body of `received` bytes, announced as `content_length` (nullopt: not announced,
// e.g. chunked), complete and acceptable? nullopt = yes; otherwise why not.
std::optional<std::string> size_problem(std::optional<std::uint64_t> content_length,
                                        std::uint64_t received, std::uint64_t max_bytes);

// What went wrong with one attempt, as output_error records it.
enum class FailureClass {
  invalid_url,  // not http(s), unparsable, or a redirect to one of those: permanent
  too_large,    // over outputs.max_bytes: permanent
  http_status,  // a final answer other than 200 (after redirects)
  redirects,    // more redirects than allowed, or https → http
  transport,    // resolve, connect, TLS, reset, timeout, a body cut short
  size,         // the body did not match Content-Length, or was empty
  filesystem,   // cannot create, write, sync or rename the file
  interrupted,  // klingqd was stopping: not counted as an attempt
  proxy_auth,   // the proxy wants credentials or refused ours (407): permanent until the config changes
};
const char* to_string(FailureClass failure);
// False for failures that no retry can fix (the same URL gives the same answer).
bool is_retryable(FailureClass failure);

}  // namespace klingq::outputs
