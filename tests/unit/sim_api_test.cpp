// The simulator's request handling without a socket: routing, auth, formats, the
// X-RateLimit-* headers in real time under a time scale, faults, control endpoints,
// webhooks and their signatures.
#include "sim/api.hpp"

// klingq's own signer, written apart from the simulator's: the two must agree.
#include "webhook/signature.hpp"

#include <boost/json/parse.hpp>
#include <doctest/doctest.h>

using namespace klingq::sim;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

const char* seed_body = R"({
    "query": "mutation Generate($input: GenerateInput!) { generate(input: $input) { id status type provider url metadata creditCost } }",
    "variables": {"input": {"type": "VIDEO", "provider": "kling",
      "input": {"text": "A serene landscape with mountains and a lake at sunset"},
      "options": {"duration": 5, "aspectRatio": "16:9"}}}})";

struct Fixture {
  TimePoint real0 = *parse_iso8601("2026-05-05T12:00:00Z");
  TimePoint sim0 = *parse_iso8601("2026-05-05T23:50:00Z");
  Api api;
  explicit Fixture(Settings s = {}, double scale = 10.0)
      : api(s, Secret("key-1"), Secret("whsec"), scale, real0, sim0) {}

  ApiReply graphql(std::string_view body, TimePoint real, std::optional<std::string_view> key = std::nullopt,
                   std::string_view auth = "Bearer key-1") {
    ApiRequest r;
    r.method = "POST";
    r.target = "/graphql";
    r.body = body;
    r.authorization = auth;
    r.idempotency_key = key;
    return api.handle(r, real);
  }
  ApiReply rest(std::string_view method, std::string_view target, std::string_view body, TimePoint real,
                std::string_view api_key = "key-1", std::optional<std::string_view> key = std::nullopt) {
    ApiRequest r;
    r.method = method;
    r.target = target;
    r.body = body;
    r.api_key = api_key;
    r.idempotency_key = key;
    return api.handle(r, real);
  }
  json::object control(std::string_view method, std::string_view target, std::string_view body, TimePoint real) {
    ApiRequest r;
    r.method = method;
    r.target = target;
    r.body = body;
    auto reply = api.handle(r, real);
    REQUIRE(reply.status == 200);
    return json::parse(reply.body).as_object();
  }
};

json::object body_of(const ApiReply& reply) { return json::parse(reply.body).as_object(); }

std::string code_of(const ApiReply& reply) {
  return std::string(body_of(reply).at("errors").at(0).at("extensions").at("code").as_string());
}

Settings quick(Plan plan) {
  Settings s;
  s.plan = plan;
  s.gen_min_seconds = s.gen_max_seconds = 30;
  return s;
}

}  // namespace

TEST_CASE("the seed's request is accepted with the documented shape and headers") {
  Fixture f(quick(Plan::free));
  auto reply = f.graphql(seed_body, f.real0, "unique-request-id-123");
  REQUIRE(reply.status == 200);
  auto job = body_of(reply).at("data").at("generate").as_object();
  CHECK(job.at("status") == "processing");
  CHECK(job.at("type") == "VIDEO");
  CHECK(job.at("provider") == "kling");
  CHECK(job.at("url").is_null());
  CHECK(job.at("creditCost") == 100);
  CHECK(job.size() == 7);  // exactly the selection
  CHECK(reply.header("X-RateLimit-Limit") == "10");
  CHECK(reply.header("X-RateLimit-Remaining") == "9");
  // The simulated window ends 60 s after the simulated start: 6 s real at scale 10.
  CHECK(reply.header("X-RateLimit-Reset") == std::to_string(epoch_ms(f.real0 + 6s)));
  CHECK(reply.header("X-RateLimit-Limit-Day") == "100");
  CHECK(reply.header("X-RateLimit-Remaining-Day") == "99");
  // Simulated midnight is 10 minutes away: 60 s real.
  CHECK(reply.header("X-RateLimit-Reset-Day") == std::to_string(epoch_ms(f.real0 + 60s)));
  CHECK(reply.header("X-RateLimit-Limit-Parallel") == "1");
  CHECK(reply.header("X-RateLimit-Remaining-Parallel") == "0");
}

TEST_CASE("429 carries the window, Retry-After in real seconds, and every header") {
  Fixture f(quick(Plan::free));
  CHECK(f.graphql(seed_body, f.real0).status == 200);
  auto reply = f.graphql(seed_body, f.real0 + 100ms);
  REQUIRE(reply.status == 429);
  CHECK(code_of(reply) == "RATE_LIMITED");
  CHECK(body_of(reply).at("errors").at(0).at("extensions").at("window") == "parallel");
  // The job ends 30 s simulated after it began = 3 s real; 2.9 s from now → 3.
  CHECK(reply.header("Retry-After") == "3");
  CHECK(reply.header("X-RateLimit-Remaining-Parallel") == "0");
  CHECK(reply.header("X-RateLimit-Remaining") == "8");
  for (int i = 0; i < 8; ++i) f.rest("GET", "/v1/credits", "", f.real0 + 200ms);
  auto rpm = f.rest("GET", "/v1/credits", "", f.real0 + 300ms);
  REQUIRE(rpm.status == 429);
  CHECK(body_of(rpm).at("errors").at(0).at("extensions").at("window") == "rpm");
  CHECK(rpm.header("Retry-After") == "6");  // 5.7 s real to the window's end, rounded up
  CHECK(rpm.header("X-RateLimit-Remaining") == "0");
  CHECK(f.api.account().stats().rate_limited_parallel == 1);
  CHECK(f.api.account().stats().rate_limited_rpm == 1);
}

TEST_CASE("authentication per endpoint style") {
  Fixture f(quick(Plan::pro));
  CHECK(f.graphql(seed_body, f.real0, std::nullopt, "").status == 401);
  CHECK(f.graphql(seed_body, f.real0, std::nullopt, "Bearer wrong").status == 401);
  auto reply = f.graphql(seed_body, f.real0, std::nullopt, "key-1");  // no Bearer
  CHECK(reply.status == 401);
  CHECK(code_of(reply) == "UNAUTHENTICATED");
  CHECK_FALSE(reply.header("X-RateLimit-Limit").empty());
  CHECK(f.rest("GET", "/v1/credits", "", f.real0, "").status == 401);
  CHECK(f.rest("GET", "/v1/credits", "", f.real0, "key-2").status == 401);
  CHECK(f.graphql(seed_body, f.real0, std::nullopt, "bearer key-1").status == 200);
  CHECK(f.api.account().stats().unauthorized == 5);
  CHECK(f.api.account().usage(f.api.time_scale().to_sim(f.real0)).window_used == 1);
  CHECK(reply.body.find("key-1") == std::string::npos);
}

TEST_CASE("REST endpoints: submit, job status, credits, not found, wrong method") {
  Fixture f(quick(Plan::pro));
  auto submit = f.rest("POST", "/v1/text_to_video",
                       R"({"service":"kling","prompt":"a fox","duration":10,"webhookUrl":"http://127.0.0.1:1/h"})",
                       f.real0);
  REQUIRE(submit.status == 200);
  auto job = body_of(submit).at("data").at("generatevideo").as_object();
  CHECK(job.at("creditCost") == 200);
  CHECK(job.at("webhookUrl") == "http://127.0.0.1:1/h");
  CHECK(job.at("createdAt") == "2026-05-05T23:50:00Z");
  std::string id(job.at("id").as_string());
  auto status = f.rest("GET", "/v1/jobs/" + id, "", f.real0 + 1s);
  CHECK(body_of(status).at("data").at("generatevideo").at("status") == "processing");
  status = f.rest("GET", "/v1/jobs/" + id, "", f.real0 + 3s);
  auto done = body_of(status).at("data").at("generatevideo").as_object();
  CHECK(done.at("status") == "completed");
  CHECK(done.at("url").as_string() == "https://cdn.doitong.com/outputs/" + id + ".mp4");
  CHECK(done.at("metadata").at("width") == 1920);
  CHECK(done.at("completedAt") == "2026-05-05T23:50:30Z");
  CHECK(body_of(f.rest("GET", "/v1/credits", "", f.real0 + 3s)).at("balance") == 100000 - 200);
  auto missing = f.rest("GET", "/v1/jobs/nope", "", f.real0 + 3s);
  CHECK(missing.status == 404);
  CHECK(f.rest("GET", "/v1/text_to_video", "", f.real0 + 3s).status == 405);
  auto bad = f.rest("POST", "/v1/text_to_video", R"({"service":"kling","prompt":"x","aspectRatio":"4:3"})",
                    f.real0 + 3s);
  CHECK(bad.status == 400);
  CHECK(body_of(bad).at("errors").at(0).at("extensions").at("parameter") == "aspectRatio");
  CHECK(bad.body.find("aspectRatio") != std::string::npos);
  CHECK(f.rest("POST", "/v1/text_to_video", "not json", f.real0 + 3s).status == 400);
  CHECK(f.rest("GET", "/elsewhere", "", f.real0).status == 404);
}

TEST_CASE("GraphQL queries and GraphQL errors") {
  Fixture f(quick(Plan::pro));
  auto credits = f.graphql(R"({"query": "query { credits { balance } }"})", f.real0);
  CHECK(body_of(credits).at("data").at("credits").at("balance") == 100000);
  auto submitted = body_of(f.graphql(seed_body, f.real0));
  std::string id(submitted.at("data").at("generate").at("id").as_string());
  auto job = f.graphql(R"({"query": "query Job($id: ID!) { job(id: $id) { id status url metadata creditCost error } }",
                           "variables": {"id": ")" + id + R"("}, "operationName": "Job"})",
                       f.real0);
  REQUIRE(job.status == 200);
  CHECK(body_of(job).at("data").at("job").at("status") == "processing");
  CHECK(code_of(f.graphql(R"({"query": "{ nothing { id } }"})", f.real0)) == "GRAPHQL_VALIDATION_FAILED");
  CHECK(code_of(f.graphql(R"({"query": "mutation { delete(id: 1) { id } }"})", f.real0)) ==
        "GRAPHQL_VALIDATION_FAILED");
  CHECK(code_of(f.graphql(R"({"query": "{ job(id: \"x\") { id colour } }"})", f.real0)) ==
        "GRAPHQL_VALIDATION_FAILED");
  CHECK(code_of(f.graphql(R"({"query": "{ credits { balance "})", f.real0)) == "GRAPHQL_PARSE_FAILED");
  CHECK(code_of(f.graphql(R"({"variables": {}})", f.real0)) == "BAD_USER_INPUT");
  CHECK(code_of(f.graphql("{{{", f.real0)) == "BAD_USER_INPUT");
  CHECK(f.graphql(R"({"query": "{ job(id: \"nope\") { id } }"})", f.real0).status == 404);
  auto invalid = f.graphql(
      R"({"query": "mutation { generate(input: {type: VIDEO, provider: \"kling\", input: {text: \"x\"}, options: {duration: 7}}) { id } }"})",
      f.real0);
  CHECK(invalid.status == 400);
  CHECK(code_of(invalid) == "BAD_USER_INPUT");
  CHECK(invalid.body.find("duration") != std::string::npos);
  CHECK(f.api.account().stats().accepted == 1);
}

TEST_CASE("idempotency across both endpoints, and conflicts") {
  Fixture f(quick(Plan::free));
  auto first = body_of(f.graphql(seed_body, f.real0, "key-A"));
  auto replay = f.graphql(seed_body, f.real0 + 10ms, "key-A");
  REQUIRE(replay.status == 200);  // no second parallel slot needed on the free plan
  CHECK(body_of(replay).at("data").at("generate").at("id") == first.at("data").at("generate").at("id"));
  auto rest = f.rest("POST", "/v1/text_to_video",
                     R"({"service":"kling","prompt":"A serene landscape with mountains and a lake at sunset","duration":5,"aspectRatio":"16:9"})",
                     f.real0 + 20ms, "key-1", "key-A");
  CHECK(body_of(rest).at("data").at("generatevideo").at("id") == first.at("data").at("generate").at("id"));
  auto conflict = f.rest("POST", "/v1/text_to_video", R"({"service":"kling","prompt":"something else"})",
                         f.real0 + 30ms, "key-1", "key-A");
  CHECK(conflict.status == 409);
  CHECK(code_of(conflict) == "CONFLICT");
  CHECK(conflict.body.find("key-A") != std::string::npos);
  CHECK(f.graphql(seed_body, f.real0, "").status == 400);  // an empty key is no key
  CHECK(f.api.account().balance() == 100000 - 100);
  CHECK(f.api.account().stats().idempotent_replays == 2);
}

TEST_CASE("402 names the credits required and available") {
  auto s = quick(Plan::pro);
  s.credits = 250;
  Fixture f(s);
  auto high = R"({"service":"kling","prompt":"x","quality":"high"})";
  auto reply = f.rest("POST", "/v1/text_to_video", high, f.real0);
  REQUIRE(reply.status == 402);
  auto ext = body_of(reply).at("errors").at(0).at("extensions");
  CHECK(ext.at("code") == "INSUFFICIENT_CREDITS");
  CHECK(ext.at("creditsRequired") == 300);
  CHECK(ext.at("creditsAvailable") == 250);
}

TEST_CASE("faults: each kind shapes the reply as documented") {
  auto with = [](auto set) {
    auto s = quick(Plan::pro);
    set(s.faults);
    return s;
  };
  SUBCASE("500") {
    Fixture f(with([](FaultRates& r) { r.server_error = 1; }));
    auto reply = f.graphql(seed_body, f.real0, "k");
    CHECK(reply.status == 500);
    CHECK(code_of(reply) == "INTERNAL_SERVER_ERROR");
    CHECK_FALSE(reply.header("X-RateLimit-Limit").empty());
    CHECK(f.api.account().stats().accepted == 0);
    CHECK(f.api.account().stats().server_errors == 1);
  }
  SUBCASE("502/503") {
    Fixture f(with([](FaultRates& r) { r.unavailable = 1; }));
    bool saw_502 = false, saw_503 = false;
    for (int i = 0; i < 20; ++i) {
      auto status = f.graphql(seed_body, f.real0).status;
      saw_502 |= status == 502;
      saw_503 |= status == 503;
    }
    CHECK(saw_502);
    CHECK(saw_503);
    CHECK(f.api.account().stats().accepted == 0);
  }
  SUBCASE("reset before: nothing happened") {
    Fixture f(with([](FaultRates& r) { r.reset_before = 1; }));
    CHECK(f.graphql(seed_body, f.real0, "k").close_without_response);
    CHECK(f.api.account().stats().accepted == 0);
    CHECK(f.api.account().balance() == 100000);
  }
  SUBCASE("reset after: accepted and charged, unanswered") {
    Fixture f(with([](FaultRates& r) { r.reset_after = 1; }));
    CHECK(f.graphql(seed_body, f.real0, "k").close_without_response);
    CHECK(f.api.account().stats().accepted == 1);
    CHECK(f.api.account().balance() == 100000 - 100);
  }
  SUBCASE("malformed: processed, body cut") {
    Fixture f(with([](FaultRates& r) { r.malformed = 1; }));
    auto reply = f.graphql(seed_body, f.real0, "k");
    CHECK(reply.status == 200);
    json::error_code ec;
    json::parse(reply.body, ec);
    CHECK(ec);
    CHECK(f.api.account().stats().accepted == 1);
  }
  SUBCASE("bare 429: no headers at all") {
    Fixture f(with([](FaultRates& r) { r.bare_429 = 1; }));
    auto reply = f.graphql(seed_body, f.real0, "k");
    CHECK(reply.status == 429);
    CHECK(reply.headers.empty());
    CHECK(f.api.account().stats().accepted == 0);
  }
  SUBCASE("slow") {
    Fixture f(with([](FaultRates& r) {
      r.slow = 1;
      r.slow_ms = 1234;
    }));
    auto reply = f.graphql(seed_body, f.real0, "k");
    CHECK(reply.status == 200);
    CHECK(reply.delay == 1234ms);
  }
}

TEST_CASE("webhooks are signed over the exact body and carry the payload of API.md") {
  auto s = quick(Plan::pro);
  s.fail_rate = 0;
  Fixture f(s);
  auto reply = f.rest("POST", "/v1/text_to_video",
                      R"({"service":"kling","prompt":"x","webhookUrl":"http://127.0.0.1:5/hook"})", f.real0);
  std::string id(body_of(reply).at("data").at("generatevideo").at("id").as_string());
  CHECK(f.api.take_webhooks(f.real0 + 2s).empty());
  CHECK(f.api.next_due_real() == f.real0 + 3s);
  auto hooks = f.api.take_webhooks(f.real0 + 3s);
  REQUIRE(hooks.size() == 1);
  CHECK(hooks[0].url == "http://127.0.0.1:5/hook");
  CHECK(hooks[0].signature == "sha256=" + klingq::webhook::hmac_sha256_hex("whsec", hooks[0].body));
  auto payload = json::parse(hooks[0].body).as_object();
  CHECK(payload.at("id").as_string() == id);
  CHECK(payload.at("status") == "completed");
  CHECK(payload.at("service") == "kling");
  CHECK(payload.at("metadata").at("height") == 1080);
  CHECK(payload.at("completedAt") == "2026-05-05T23:50:30Z");
}

TEST_CASE("control endpoints: stats, config (plan downgrade), jobs, reset") {
  Fixture f(quick(Plan::pro));
  for (int i = 0; i < 3; ++i) f.graphql(seed_body, f.real0, "key-" + std::to_string(i));
  auto stats = f.control("GET", "/_sim/stats", "", f.real0);
  CHECK(stats.at("requests") == 3);
  CHECK(stats.at("accepted") == 3);
  CHECK(stats.at("jobs").at("processing") == 3);
  CHECK(stats.at("accepted_keys") == 3);
  CHECK(stats.at("credits_balance") == 100000 - 300);
  CHECK(stats.at("credits_spent") == 300);
  CHECK(stats.at("duplicate_charges") == 0);
  CHECK(stats.at("max_parallel_seen") == 3);
  auto config = f.control("POST", "/_sim/config", R"({"plan": "free", "credits": 5000, "fault_500": 0})", f.real0);
  CHECK(config.at("plan") == "free");
  CHECK(config.at("limits").at("parallel") == 1);
  CHECK(config.at("credits") == 5000);
  auto refused = f.graphql(seed_body, f.real0, "key-9");
  CHECK(refused.status == 429);
  CHECK(refused.header("X-RateLimit-Limit") == "10");
  ApiRequest bad;
  bad.method = "POST";
  bad.target = "/_sim/config";
  bad.body = R"({"plann": "free"})";
  auto rejected = f.api.handle(bad, f.real0);
  CHECK(rejected.status == 400);
  CHECK(rejected.body.find("plann") != std::string::npos);
  auto jobs = f.control("GET", "/_sim/jobs", "", f.real0);
  REQUIRE(jobs.at("jobs").as_array().size() == 3);
  CHECK(jobs.at("jobs").at(0).at("idempotencyKey") == "key-0");
  CHECK(jobs.at("jobs").at(0).at("creditCost") == 100);
  auto reset = f.control("POST", "/_sim/reset", "", f.real0);
  CHECK(reset.at("requests") == 0);
  CHECK(reset.at("credits_balance") == 100000);
  CHECK(f.control("GET", "/_sim/config", "", f.real0).at("plan") == "pro");
}

TEST_CASE("enterprise is unlimited and reports no limit headers") {
  Fixture f(quick(Plan::enterprise));
  for (int i = 0; i < 500; ++i) REQUIRE(f.graphql(seed_body, f.real0).status == 200);
  auto reply = f.rest("GET", "/v1/credits", "", f.real0);
  CHECK(reply.header("X-RateLimit-Limit").empty());
  CHECK(f.api.account().stats().max_parallel_seen == 500);
}

TEST_CASE("outputs: completed videos are served at the simulator, outside every limit") {
  Settings s = quick(Plan::free);
  s.outputs.bytes = 1000;
  Fixture f(s);
  f.api.account().set_output_origin("http://127.0.0.1:4567");
  auto submit = f.graphql(seed_body, f.real0);
  std::string id(body_of(submit).at("data").at("generate").at("id").as_string());
  auto get = [&](std::string_view target, TimePoint real) {
    ApiRequest r;
    r.method = "GET";
    r.target = target;
    return f.api.handle(r, real);
  };
  // Not finished yet: nothing to serve.
  CHECK(get("/outputs/" + id + ".mp4", f.real0).status == 404);
  auto status = f.rest("GET", "/v1/jobs/" + id, "", f.real0 + 3s);
  auto url = std::string(body_of(status).at("data").at("generatevideo").at("url").as_string());
  CHECK(url == "http://127.0.0.1:4567/outputs/" + id + ".mp4");
  const auto requests_before = f.api.account().stats().requests;
  auto video = get("/outputs/" + id + ".mp4", f.real0 + 3s);
  CHECK(video.status == 200);
  CHECK(video.content_type == "video/mp4");
  CHECK(video.body == output_content(id, 1000));
  CHECK_FALSE(video.truncate_body_at);
  CHECK(video.header("X-RateLimit-Limit").empty());
  CHECK(f.api.account().stats().requests == requests_before);  // not an API request
  CHECK(get("/outputs/nope.mp4", f.real0 + 3s).status == 404);
  CHECK(get("/outputs/" + id, f.real0 + 3s).status == 404);
  const std::string video_target = "/outputs/" + id + ".mp4";
  ApiRequest post;
  post.method = "POST";
  post.target = video_target;
  CHECK(f.api.handle(post, f.real0 + 3s).status == 405);
  auto stats = f.control("GET", "/_sim/stats", "", f.real0 + 3s).at("outputs").as_object();
  CHECK(stats.at("requests") == 5);
  CHECK(stats.at("served") == 1);
  CHECK(stats.at("not_found") == 3);

  // Faults, set through /_sim/config like the others.
  f.control("POST", "/_sim/config", R"({"output_fault_truncate": 1})", f.real0 + 3s);
  auto cut = get("/outputs/" + id + ".mp4", f.real0 + 3s);
  CHECK(cut.status == 200);
  CHECK(cut.body.size() == 1000);  // announced in full...
  REQUIRE(cut.truncate_body_at);
  CHECK(*cut.truncate_body_at == 500);  // ...sent by half
  f.control("POST", "/_sim/config", R"({"output_fault_truncate": 0, "output_fault_500": 1})", f.real0 + 3s);
  CHECK(get("/outputs/" + id + ".mp4", f.real0 + 3s).status == 500);
  stats = f.control("GET", "/_sim/stats", "", f.real0 + 3s).at("outputs").as_object();
  CHECK(stats.at("truncated") == 1);
  CHECK(stats.at("server_errors") == 1);
  auto config = f.control("GET", "/_sim/config", "", f.real0 + 3s);
  CHECK(config.at("output_bytes") == 1000);

  // Redirect hops, each to a relative Location, before the video itself.
  f.control("POST", "/_sim/config", R"({"output_fault_500": 0, "output_redirects": 2})", f.real0 + 3s);
  auto first = get(video_target, f.real0 + 3s);
  CHECK(first.status == 302);
  CHECK(first.header("Location") == video_target + "?hop=1");
  const auto hop1 = video_target + "?hop=1";
  CHECK(get(hop1, f.real0 + 3s).header("Location") == video_target + "?hop=2");
  const auto hop2 = video_target + "?hop=2";
  CHECK(get(hop2, f.real0 + 3s).body == output_content(id, 1000));
  CHECK(f.control("GET", "/_sim/stats", "", f.real0 + 3s).at("outputs").at("redirects") == 2);
}

TEST_CASE("outputs: without --output-bytes the URLs name the CDN and nothing is served") {
  Fixture f(quick(Plan::free));
  f.api.account().set_output_origin("http://127.0.0.1:4567");
  auto submit = f.graphql(seed_body, f.real0);
  std::string id(body_of(submit).at("data").at("generate").at("id").as_string());
  auto status = f.rest("GET", "/v1/jobs/" + id, "", f.real0 + 3s);
  CHECK(body_of(status).at("data").at("generatevideo").at("url").as_string() ==
        "https://cdn.doitong.com/outputs/" + id + ".mp4");
  ApiRequest r;
  r.method = "GET";
  const std::string target = "/outputs/" + id + ".mp4";  // r.target only views it
  r.target = target;
  CHECK(f.api.handle(r, f.real0 + 3s).status == 404);
}

TEST_CASE("outputs: video bytes depend on the job id only") {
  CHECK(output_content("abc", 100) == output_content("abc", 100));
  CHECK(output_content("abc", 100) != output_content("abd", 100));
  CHECK(output_content("abc", 100).substr(0, 50) == output_content("abc", 50));
  CHECK(output_content("abc", 0).empty());
  CHECK(output_content("abc", 13).size() == 13);
}
