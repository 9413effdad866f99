// The pure side of outputs.download (lib/outputs/download.hpp): which URLs are fetched,
// how redirects resolve, what logs show of a URL, where files go, and the size checks.
#include "outputs/download.hpp"

#include <doctest/doctest.h>

using namespace klingq::outputs;

TEST_CASE("outputs: download URLs parse into host, port, Host header and target") {
  auto url = parse_url("https://cdn.doitong.com/outputs/abc123xyz.mp4");
  REQUIRE(url);
  CHECK(url->tls);
  CHECK(url->host == "cdn.doitong.com");
  CHECK(url->port == "443");
  CHECK(url->host_header == "cdn.doitong.com");
  CHECK(url->target == "/outputs/abc123xyz.mp4");

  url = parse_url("http://127.0.0.1:8080/outputs/a.mp4?sig=abc#frag");
  REQUIRE(url);
  CHECK_FALSE(url->tls);
  CHECK(url->port == "8080");
  CHECK(url->host_header == "127.0.0.1:8080");
  CHECK(url->target == "/outputs/a.mp4?sig=abc");

  url = parse_url("http://[::1]:9000?x=1");
  REQUIRE(url);
  CHECK(url->host == "::1");
  CHECK(url->host_header == "[::1]:9000");
  CHECK(url->target == "/?x=1");

  CHECK(parse_url("https://example.com")->target == "/");
  CHECK_FALSE(parse_url("ftp://example.com/a.mp4"));
  CHECK_FALSE(parse_url("/outputs/a.mp4"));
  CHECK_FALSE(parse_url(""));
  CHECK_FALSE(parse_url("https:///a.mp4"));
  CHECK_FALSE(parse_url("https://user:pass@example.com/a.mp4"));
  CHECK_FALSE(parse_url("https://example.com:99999/a.mp4"));
  CHECK_FALSE(parse_url("https://example.com/a b.mp4"));
  CHECK_FALSE(parse_url("https://example.com/a.mp4\r\nX-Injected: 1"));
}

TEST_CASE("outputs: a redirect's Location resolves against the URL that answered") {
  auto base = *parse_url("https://cdn.example.com/v/1/abc.mp4?sig=1");
  CHECK(resolve_location(base, "https://edge.example.net/x.mp4")->host == "edge.example.net");
  auto scheme_relative = resolve_location(base, "//edge.example.net/y.mp4");
  REQUIRE(scheme_relative);
  CHECK(scheme_relative->tls);
  CHECK(scheme_relative->target == "/y.mp4");
  auto absolute_path = resolve_location(base, "/other/z.mp4?t=2");
  REQUIRE(absolute_path);
  CHECK(absolute_path->host == "cdn.example.com");
  CHECK(absolute_path->target == "/other/z.mp4?t=2");
  CHECK(resolve_location(base, "next.mp4")->target == "/v/1/next.mp4");
  CHECK(resolve_location(base, "?sig=2")->target == "/v/1/abc.mp4?sig=2");
  CHECK(resolve_location(base, "  /padded.mp4 ")->target == "/padded.mp4");
  CHECK_FALSE(resolve_location(base, ""));
  CHECK_FALSE(resolve_location(base, "ftp://example.com/a.mp4"));
  CHECK_FALSE(resolve_location(base, "javascript:alert(1)"));
  // A downgrade parses; refusing it is the downloader's decision (it knows both ends).
  CHECK_FALSE(resolve_location(base, "http://plain.example.com/a.mp4")->tls);
}

TEST_CASE("outputs: URLs in logs and errors lose their query, where signed URLs keep credentials") {
  CHECK(redacted(*parse_url("https://cdn.example.com/a.mp4?X-Amz-Signature=secret")) ==
        "https://cdn.example.com/a.mp4");
  CHECK(redacted("https://cdn.example.com:8443/a.mp4?token=secret") == "https://cdn.example.com:8443/a.mp4");
  auto unparsable = redacted("weird://user:secret@host/a?token=secret");
  CHECK(unparsable.find("secret") == std::string::npos);
  CHECK(unparsable == "weird://...");
  CHECK(redacted("token=secret") == "(not a URL)");
}

TEST_CASE("outputs: a job's file and its part file live in outputs.dir") {
  auto paths = output_paths("/var/lib/klingq/videos", 42);
  CHECK(paths.final_path == "/var/lib/klingq/videos/42.mp4");
  CHECK(paths.part_path == "/var/lib/klingq/videos/.42.mp4.part");
  CHECK(output_paths("videos/", 7).final_path == "videos/7.mp4");
  CHECK(output_paths("videos//", 7).part_path == "videos/.7.mp4.part");
  CHECK(output_paths("/", 1).final_path == "/1.mp4");
  CHECK(output_paths("", 1).final_path == "./1.mp4");
}

TEST_CASE("outputs: size checks against Content-Length and outputs.max_bytes") {
  CHECK_FALSE(size_problem(1000, 1000, 2000));
  CHECK_FALSE(size_problem(std::nullopt, 1000, 2000));  // chunked: no length to compare
  CHECK_FALSE(size_problem(2000, 2000, 2000));           // the limit itself is allowed
  CHECK(size_problem(1000, 999, 2000)->find("Content-Length said 1000") != std::string::npos);
  CHECK(size_problem(1000, 1001, 2000));
  CHECK(size_problem(3000, 0, 2000)->find("exceeds outputs.max_bytes") != std::string::npos);
  CHECK(size_problem(std::nullopt, 2001, 2000)->find("exceeds") != std::string::npos);
  CHECK(*size_problem(0, 0, 2000) == "empty body");
  CHECK(size_problem(std::nullopt, 0, 2000));
}

TEST_CASE("outputs: only failures a retry cannot fix are final") {
  CHECK_FALSE(is_retryable(FailureClass::invalid_url));
  CHECK_FALSE(is_retryable(FailureClass::too_large));
  for (auto failure : {FailureClass::http_status, FailureClass::redirects, FailureClass::transport, FailureClass::size,
                       FailureClass::filesystem, FailureClass::interrupted}) {
    CHECK(is_retryable(failure));
  }
  CHECK(std::string(to_string(FailureClass::too_large)) == "too_large");
  CHECK(std::string(to_string(FailureClass::http_status)) == "http_status");
  // A proxy's 407 answers every download alike until its credentials change.
  CHECK_FALSE(is_retryable(FailureClass::proxy_auth));
  CHECK(std::string(to_string(FailureClass::proxy_auth)) == "proxy_auth");
}
