#include "webhook/receiver.hpp"
#include "webhook/signature.hpp"

#include <doctest/doctest.h>

using namespace klingq;
using namespace klingq::webhook;

TEST_CASE("the receiver records only signed terminal payloads") {
  std::vector<config::Secret> secrets{config::Secret("old"), config::Secret("new")};
  const std::string body =
      R"({"id":"abc123xyz","status":"completed","url":"https://cdn.doitong.com/outputs/abc123xyz.mp4","service":"kling","metadata":{"duration":5,"width":1920,"height":1080}})";
  auto good = decide("POST", "/kq", sign("new", body), body, secrets);
  REQUIRE(good.verdict == Verdict::record);
  CHECK(good.completion->remote_id == "abc123xyz");
  CHECK(good.completion->status == "completed");
  CHECK(good.completion->url == "https://cdn.doitong.com/outputs/abc123xyz.mp4");
  CHECK(good.completion->metadata_json.find("\"width\":1920") != std::string::npos);
  CHECK(decide("POST", "/kq", sign("old", body), body, secrets).verdict == Verdict::record);

  CHECK(decide("POST", "/kq", "", body, secrets).http_status == 401);
  CHECK(decide("POST", "/kq", sign("forged", body), body, secrets).http_status == 401);
  CHECK(decide("POST", "/kq", sign("new", body), body + " ", secrets).http_status == 401);
  CHECK(decide("GET", "/kq", sign("new", body), body, secrets).http_status == 405);
  const std::string junk = "{not json";
  CHECK(decide("POST", "/kq", sign("new", junk), junk, secrets).http_status == 400);
  const std::string no_id = R"({"status":"completed"})";
  CHECK(decide("POST", "/kq", sign("new", no_id), no_id, secrets).http_status == 400);
  const std::string processing = R"({"id":"a","status":"processing"})";
  CHECK(decide("POST", "/kq", sign("new", processing), processing, secrets).verdict == Verdict::ignore);
  const std::string failed = R"({"id":"a","status":"failed","error":"content policy"})";
  auto f = decide("POST", "/kq", sign("new", failed), failed, secrets);
  CHECK(f.completion->error == "content policy");
  CHECK(path_of("https://hooks.example.com/klingq/webhook?x=1") == "/klingq/webhook");
  CHECK(path_of("http://h:8081") == "/");
}
