#include "api/protocol.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>

using namespace klingq;
using namespace klingq::api;
namespace json = boost::json;

namespace {
http::ClientResult response(unsigned status, std::string body) {
  http::ClientResult r;
  r.response.status = status;
  r.response.body = std::move(body);
  return r;
}
std::string header(const http::ClientRequest& request, const std::string& name) {
  for (const auto& [k, v] : request.headers) if (k == name) return v;
  return "";
}
}  // namespace

TEST_CASE("the GraphQL submit carries the row, the key and the webhook") {
  config::Secret key("k-123");
  JobSpec job;
  job.prompt = "A serene landscape \"quoted\" 🐱";
  job.duration = 10;
  job.mode = "professional";
  job.version = "2.1-master";
  job.options_json = R"({"camera_control": {"type": "simple"}, "duration": 99})";
  job.idempotency_key = "0b1c2d3e-0000-4000-8000-000000000001";
  Endpoint endpoint{config::Protocol::graphql, &key, "https://hooks.example/kq"};
  auto request = build_submit(job, endpoint);
  CHECK(request.target == "/graphql");
  CHECK(header(request, "Authorization") == "Bearer k-123");
  CHECK(header(request, "Idempotency-Key") == job.idempotency_key);
  auto body = json::parse(request.body).as_object();
  CHECK(body.at("query").as_string().find("generate(input: $input)") != json::string::npos);
  auto input = body.at("variables").at("input").as_object();
  CHECK(input.at("type") == "VIDEO");
  CHECK(input.at("provider") == "kling");
  CHECK(input.at("input").at("text") == json::value(job.prompt));
  CHECK(input.at("webhookUrl") == "https://hooks.example/kq");
  auto options = input.at("options").as_object();
  CHECK(options.at("duration") == 10);  // the validated column wins over options
  CHECK(options.at("quality") == "high");
  CHECK(options.at("version") == "2.1-master");
  CHECK(options.at("aspectRatio") == "16:9");
  CHECK(options.at("camera_control").at("type") == "simple");
}

TEST_CASE("the REST submit uses X-API-Key and the documented parameters") {
  config::Secret key("k-123");
  JobSpec job;
  job.prompt = "p";
  job.idempotency_key = "key";
  auto request = build_submit(job, Endpoint{config::Protocol::rest, &key, ""});
  CHECK(request.target == "/v1/text_to_video");
  CHECK(header(request, "X-API-Key") == "k-123");
  CHECK(header(request, "Authorization").empty());
  auto body = json::parse(request.body).as_object();
  CHECK(body.at("service") == "kling");
  CHECK(body.at("prompt") == "p");
  CHECK(body.at("duration") == 5);
  CHECK(!body.contains("webhookUrl"));
  CHECK(build_status("a/b", Endpoint{config::Protocol::rest, &key, ""}).target == "/v1/jobs/a%2Fb");
  CHECK(build_credits(Endpoint{config::Protocol::rest, &key, ""}).target == "/v1/credits");
}

TEST_CASE("every outcome is classified once, by code first, then by status") {
  auto accepted = classify_submit(response(200,
      R"({"data":{"generate":{"id":"abc123xyz","status":"processing","creditCost":300}}})"));
  CHECK(accepted.outcome == OutcomeClass::accepted);
  CHECK(accepted.remote_id == "abc123xyz");
  CHECK(accepted.credit_cost == 300);
  // The seed's samples name the field generatevideo.
  CHECK(classify_submit(response(200, R"({"data":{"generatevideo":{"id":"x"}}})")).remote_id == "x");

  auto no_credit = classify_submit(response(402,
      R"({"errors":[{"message":"Insufficient credits for this operation","extensions":{"code":"INSUFFICIENT_CREDITS","creditsRequired":100,"creditsAvailable":50}}]})"));
  CHECK(no_credit.outcome == OutcomeClass::no_credit);
  CHECK(no_credit.credits_available == 50);
  CHECK(no_credit.message == "Insufficient credits for this operation");

  // GraphQL may answer 200 with errors: the code decides.
  auto limited = classify_submit(response(200,
      R"({"errors":[{"message":"Daily limit reached","extensions":{"code":"RATE_LIMITED"}}]})"));
  CHECK(limited.outcome == OutcomeClass::rate_limited);
  CHECK(limited.window == ratelimit::Window::daily);
  auto named = classify_submit(response(429,
      R"({"errors":[{"message":"slow down","extensions":{"code":"RATE_LIMITED","window":"parallel"}}]})"));
  CHECK(named.window == ratelimit::Window::parallel);

  CHECK(classify_submit(response(400, R"({"errors":[{"message":"duration must be 5 or 10","extensions":{"code":"BAD_USER_INPUT"}}]})")).outcome == OutcomeClass::invalid_job);
  CHECK(classify_submit(response(401, R"({"errors":[{"message":"bad key"}]})")).outcome == OutcomeClass::unauthorized);
  CHECK(classify_submit(response(500, "")).outcome == OutcomeClass::transient);
  CHECK(classify_submit(response(503, "<html>")).outcome == OutcomeClass::transient);
  CHECK(classify_submit(response(429, "")).outcome == OutcomeClass::rate_limited);
  CHECK(classify_submit(response(200, R"({"data":{"generate":{"id":)")).outcome == OutcomeClass::transient);
  CHECK(classify_submit(response(200, R"({"data":{"generate":{"status":"processing"}}})")).outcome == OutcomeClass::transient);
  CHECK(classify_submit(response(409, R"({"errors":[{"message":"key reused","extensions":{"code":"CONFLICT"}}]})")).outcome == OutcomeClass::invalid_job);
  http::ClientResult timeout;
  timeout.error = make_error_code(boost::system::errc::timed_out);
  auto t = classify_submit(timeout);
  CHECK(t.outcome == OutcomeClass::transient);
  CHECK(t.http_status == 0);
  CHECK(is_retryable(OutcomeClass::transient));
  CHECK(!is_retryable(OutcomeClass::rate_limited));
  CHECK(!is_retryable(OutcomeClass::invalid_job));
}

TEST_CASE("status and balance responses") {
  auto done = parse_status(response(200,
      R"({"data":{"job":{"id":"a","status":"completed","url":"https://cdn/x.mp4","metadata":{"width":1920},"creditCost":100}}})"));
  CHECK(done.outcome.outcome == OutcomeClass::accepted);
  CHECK(done.terminal);
  CHECK(done.url == "https://cdn/x.mp4");
  CHECK(json::parse(done.metadata_json).at("width") == 1920);
  auto rest = parse_status(response(200, R"({"id":"a","status":"processing"})"));
  CHECK(!rest.terminal);
  CHECK(rest.status == "processing");
  CHECK(parse_status(response(200, R"({"data":{"job":{"id":"a","status":"failed","error":"nsfw"}}})")).error == "nsfw");
  CHECK(parse_balance(response(200, R"({"balance": 1234})")).balance == 1234);
  CHECK(parse_balance(response(200, R"({"data":{"credits":{"balance":77}}})")).balance == 77);
  CHECK(!parse_balance(response(200, R"({"data":{"credits":{}}})")).balance);
}

TEST_CASE("retry delays double, cap and jitter") {
  using namespace std::chrono_literals;
  CHECK(retry_delay(1, 2s, 600s, 1.0) == 2s);
  CHECK(retry_delay(1, 2s, 600s, 0.0) == 1s);
  CHECK(retry_delay(3, 2s, 600s, 1.0) == 8s);
  CHECK(retry_delay(30, 2s, 600s, 1.0) == 600s);
  CHECK(retry_delay(30, 2s, 600s, 0.0) == 300s);
}
