// klingq-sim over real HTTP: the binary started on port 0 through tests/support, driven
// by a small blocking client, webhooks received by a klingq::http::Server in the test.
// Covers every status code, the headers, each limit, idempotency, the credit
// arithmetic with refunds, webhook signatures (checked with an independent HMAC), each
// fault, a plan downgrade mid-run and the seed's own curl request. Waits are polls of
// /_sim/stats (or of the condition itself) with a deadline, never bare sleeps; a large
// --time-scale keeps every test fast.
#include "http/server.hpp"
#include "support/process.hpp"
#include "webhook/signature.hpp"

#include <doctest/doctest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using klingq::testing::Process;

namespace {

const std::string api_key = "sim-test-key-6f1e";
const std::string webhook_secret = "whsec-test";

// The seed's curl example, byte for byte (only the host differs).
const std::string seed_curl_body = R"({
    "query": "mutation Generate($input: GenerateInput!) { generate(input: $input) { id status type provider url metadata creditCost } }",
    "variables": {
      "input": {
        "type": "VIDEO",
        "provider": "kling",
        "input": {
          "text": "A serene landscape with mountains and a lake at sunset"
        },
        "options": {
          "duration": 5,
          "aspectRatio": "16:9"
        }
      }
    }
  })";

struct Reply {
  boost::system::error_code error;  // set when no complete response came
  unsigned status = 0;
  bhttp::fields headers;
  std::string body;
  std::chrono::milliseconds elapsed{0};

  json::value json() const { return json::parse(body); }
  std::string header(const std::string& name) const { return std::string(headers[name]); }
  bool has(const std::string& name) const { return headers.find(name) != headers.end(); }
  std::string code() const {
    return std::string(json::parse(body).at("errors").at(0).at("extensions").at("code").as_string());
  }
};

using Headers = std::vector<std::pair<std::string, std::string>>;

// One request on a fresh connection, blocking, with a deadline.
Reply exchange(const std::string& host, const std::string& port, bhttp::verb method, const std::string& target,
               const std::string& body, const Headers& headers, std::chrono::milliseconds timeout = 10s) {
  asio::io_context io;
  Reply reply;
  auto started = std::chrono::steady_clock::now();
  beast::tcp_stream stream(io);
  tcp::resolver resolver(io);
  stream.expires_after(timeout);
  stream.connect(resolver.resolve(host, port), reply.error);
  if (reply.error) return reply;
  bhttp::request<bhttp::string_body> request{method, target, 11};
  request.set(bhttp::field::host, host + ":" + port);
  for (const auto& [name, value] : headers) request.set(name, value);
  request.body() = body;
  request.prepare_payload();
  // Blocking calls on a tcp_stream do not honour expires_after; the socket's own
  // timeouts bound them instead.
  timeval tv{static_cast<long>(timeout.count() / 1000), static_cast<long>((timeout.count() % 1000) * 1000)};
  setsockopt(stream.socket().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(stream.socket().native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  bhttp::write(stream.socket(), request, reply.error);
  if (reply.error) return reply;
  beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> response;
  bhttp::read(stream.socket(), buffer, response, reply.error);
  reply.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  if (reply.error) return reply;
  reply.status = response.result_int();
  reply.headers = response.base();
  reply.body = response.body();
  return reply;
}

class Sim {
 public:
  explicit Sim(std::vector<std::string> extra = {}, std::map<std::string, std::string> env = {})
      : process_(arguments(std::move(extra)), std::move(env)) {
    auto line = process_.wait_for_line("listening on", 10s);
    REQUIRE_MESSAGE(line, "klingq-sim did not start: " << process_.stderr_text());
    auto address = klingq::testing::address_from_line(*line);
    auto colon = address.rfind(':');
    host_ = address.substr(0, colon);
    port_ = address.substr(colon + 1);
  }

  Reply call(bhttp::verb method, const std::string& target, const std::string& body = "",
             Headers headers = {}, std::chrono::milliseconds timeout = 10s) {
    return exchange(host_, port_, method, target, body, headers, timeout);
  }
  // GraphQL with the Bearer key (unless headers replace it) and an optional key.
  Reply graphql(const std::string& body, const std::string& idempotency_key = "", Headers headers = {}) {
    if (headers.empty()) {
      headers = {{"Content-Type", "application/json"}, {"Authorization", "Bearer " + api_key}};
    }
    if (!idempotency_key.empty()) headers.emplace_back("Idempotency-Key", idempotency_key);
    return call(bhttp::verb::post, "/graphql", body, headers);
  }
  Reply rest_submit(const json::object& body, const std::string& idempotency_key = "") {
    Headers headers{{"Content-Type", "application/json"}, {"X-API-Key", api_key}};
    if (!idempotency_key.empty()) headers.emplace_back("Idempotency-Key", idempotency_key);
    return call(bhttp::verb::post, "/v1/text_to_video", json::serialize(body), headers);
  }
  Reply rest_get(const std::string& target, const std::string& key = api_key) {
    return call(bhttp::verb::get, target, "", {{"X-API-Key", key}});
  }
  json::object stats() {
    auto r = call(bhttp::verb::get, "/_sim/stats");
    REQUIRE(r.status == 200);
    return r.json().as_object();
  }
  json::object configure(const json::object& changes) {
    auto r = call(bhttp::verb::post, "/_sim/config", json::serialize(changes));
    REQUIRE_MESSAGE(r.status == 200, r.body);
    return r.json().as_object();
  }
  json::array jobs() { return call(bhttp::verb::get, "/_sim/jobs").json().at("jobs").as_array(); }

  // Polls the stats until the predicate holds; fails the test at the deadline.
  json::object wait_stats(const std::function<bool(const json::object&)>& predicate,
                          std::chrono::milliseconds deadline = 10s) {
    auto until = std::chrono::steady_clock::now() + deadline;
    for (;;) {
      auto s = stats();
      if (predicate(s)) return s;
      if (std::chrono::steady_clock::now() >= until) {
        FAIL("condition not reached; last stats: " << json::serialize(s));
      }
      std::this_thread::sleep_for(5ms);  // poll interval, not a wait for a condition
    }
  }

  Process& process() { return process_; }

 private:
  static std::vector<std::string> arguments(std::vector<std::string> extra) {
    std::vector<std::string> argv{KLINGQ_SIM_BINARY, "--listen", "127.0.0.1:0", "--webhook-secret", webhook_secret};
    bool has_key = false;
    for (const auto& a : extra) has_key |= a.starts_with("--api-key");
    if (!has_key) {
      argv.push_back("--api-key");
      argv.push_back(api_key);
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }
  Process process_;
  std::string host_;
  std::string port_;
};

json::object generate_input(const std::string& text, int duration = 5, const std::string& quality = "standard",
                            const std::string& webhook_url = "") {
  json::object input{{"type", "VIDEO"},
                     {"provider", "kling"},
                     {"input", json::object{{"text", text}}},
                     {"options", json::object{{"duration", duration}, {"aspectRatio", "16:9"}, {"quality", quality}}}};
  if (!webhook_url.empty()) input["webhookUrl"] = webhook_url;
  return input;
}

std::string generate_body(const json::object& input) {
  return json::serialize(json::object{
      {"query", "mutation Generate($input: GenerateInput!) { generate(input: $input) { id status creditCost createdAt } }"},
      {"variables", json::object{{"input", input}}}});
}

std::string job_id(const Reply& r, const char* field = "generate") {
  return std::string(r.json().at("data").at(field).at("id").as_string());
}

std::int64_t as_int(const json::value& v) { return v.to_number<std::int64_t>(); }

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A webhook receiver: a klingq::http::Server on its own thread recording every POST.
class Receiver {
 public:
  struct Hook {
    std::string body;
    std::string signature;
  };

  Receiver() : server_(io_.get_executor(), {}, [this](klingq::http::Request r) { return handle(std::move(r)); }) {
    auto endpoint = server_.listen("127.0.0.1:0");
    url_ = "http://127.0.0.1:" + std::to_string(endpoint.port()) + "/hooks/kling?src=sim";
    server_.start();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Receiver() {
    io_.stop();
    thread_.join();
  }
  const std::string& url() const { return url_; }
  std::vector<Hook> hooks() {
    std::lock_guard lock(mutex_);
    return hooks_;
  }
  std::vector<Hook> wait_for(std::size_t count, std::chrono::milliseconds deadline = 10s) {
    auto until = std::chrono::steady_clock::now() + deadline;
    while (hooks().size() < count) {
      if (std::chrono::steady_clock::now() >= until) FAIL("only " << hooks().size() << " webhooks arrived");
      std::this_thread::sleep_for(5ms);
    }
    return hooks();
  }
  std::string last_target() {
    std::lock_guard lock(mutex_);
    return last_target_;
  }
  std::atomic<bool> fail_next{false};  // answer the next POST with 500

 private:
  asio::awaitable<klingq::http::Response> handle(klingq::http::Request request) {
    if (fail_next.exchange(false)) co_return klingq::http::make_response(500, "{}");
    std::lock_guard lock(mutex_);
    hooks_.push_back({request.body(), std::string(request["X-Doitong-Signature"])});
    last_target_ = std::string(request.target());
    co_return klingq::http::make_response(200, "{}");
  }
  asio::io_context io_;
  klingq::http::Server server_;
  std::thread thread_;
  std::string url_;
  std::mutex mutex_;
  std::vector<Hook> hooks_;
  std::string last_target_;
};

const char* rate_headers[] = {"X-RateLimit-Limit",     "X-RateLimit-Remaining",     "X-RateLimit-Reset",
                              "X-RateLimit-Limit-Day", "X-RateLimit-Remaining-Day", "X-RateLimit-Reset-Day",
                              "X-RateLimit-Limit-Parallel", "X-RateLimit-Remaining-Parallel"};

void check_rate_headers(const Reply& r) {
  for (const char* h : rate_headers) CHECK_MESSAGE(r.has(h), h << " missing on HTTP " << r.status);
}

}  // namespace

TEST_CASE("sim: the seed's curl request succeeds unchanged, with every rate-limit header") {
  Sim sim({"--plan", "free", "--time-scale", "100"});
  auto before = now_ms();
  auto r = sim.call(bhttp::verb::post, "/graphql", seed_curl_body,
                    {{"Content-Type", "application/json"},
                     {"Authorization", "Bearer " + api_key},
                     {"Idempotency-Key", "unique-request-id-123"}});
  REQUIRE(r.status == 200);
  auto job = r.json().at("data").at("generate").as_object();
  CHECK(job.at("status") == "processing");
  CHECK(job.at("type") == "VIDEO");
  CHECK(job.at("provider") == "kling");
  CHECK(job.at("url").is_null());
  CHECK(job.at("creditCost") == 100);
  CHECK(job.contains("metadata"));
  check_rate_headers(r);
  CHECK(r.header("X-RateLimit-Limit") == "10");
  CHECK(r.header("X-RateLimit-Remaining") == "9");
  CHECK(r.header("X-RateLimit-Limit-Parallel") == "1");
  CHECK(r.header("X-RateLimit-Remaining-Parallel") == "0");
  CHECK(r.header("X-RateLimit-Limit-Day") == "100");
  CHECK(r.header("X-RateLimit-Remaining-Day") == "99");
  // Reset: real epoch milliseconds; the 60 s simulated window is 600 ms real at ×100.
  auto reset = std::stoll(r.header("X-RateLimit-Reset"));
  CHECK(reset > before);
  CHECK(reset <= now_ms() + 600);
  CHECK(std::stoll(r.header("X-RateLimit-Reset-Day")) <= now_ms() + 864000 + 50);
  auto s = sim.stats();
  CHECK(s.at("accepted") == 1);
  CHECK(s.at("accepted_keys") == 1);
}

TEST_CASE("sim: 401 for a missing or wrong key on both styles, the key never printed") {
  Sim sim({"--plan", "pro", "--log-level", "debug"});
  auto body = generate_body(generate_input("x"));
  auto missing = sim.graphql(body, "", {{"Content-Type", "application/json"}});
  CHECK(missing.status == 401);
  CHECK(missing.code() == "UNAUTHENTICATED");
  check_rate_headers(missing);
  CHECK(sim.graphql(body, "", {{"Authorization", "Bearer nope"}}).status == 401);
  CHECK(sim.graphql(body, "", {{"X-API-Key", api_key}}).status == 401);  // GraphQL wants Bearer
  CHECK(sim.rest_get("/v1/credits", "").status == 401);
  CHECK(sim.rest_get("/v1/credits", "wrong").status == 401);
  CHECK(sim.rest_get("/v1/credits").status == 200);
  CHECK(sim.stats().at("unauthorized") == 5);
  sim.process().signal(SIGTERM);
  CHECK(sim.process().wait(5s) == 0);
  CHECK(sim.process().stdout_text().find(api_key) == std::string::npos);
  CHECK(sim.process().stderr_text().find(api_key) == std::string::npos);
  CHECK(sim.process().stderr_text().find("sim_started") != std::string::npos);
}

TEST_CASE("sim: the key can come from the environment - bad command lines are refused") {
  Process from_env({KLINGQ_SIM_BINARY, "--listen", "127.0.0.1:0"}, {{"KLINGQ_SIM_API_KEY", "env-key"}});
  auto line = from_env.wait_for_line("listening on", 10s);
  REQUIRE(line);
  auto address = klingq::testing::address_from_line(*line);
  auto colon = address.rfind(':');
  auto r = exchange(address.substr(0, colon), address.substr(colon + 1), bhttp::verb::get, "/v1/credits", "",
                    {{"X-API-Key", "env-key"}});
  CHECK(r.status == 200);
  auto no_key = klingq::testing::run({KLINGQ_SIM_BINARY, "--listen", "127.0.0.1:0"});
  CHECK(no_key.exit_code == 2);
  CHECK(no_key.err.find("--api-key") != std::string::npos);
  auto bad_rate = klingq::testing::run({KLINGQ_SIM_BINARY, "--api-key", "k", "--fault-500", "2"});
  CHECK(bad_rate.exit_code == 2);
  CHECK(bad_rate.err.find("fault-500") != std::string::npos);
  auto help = klingq::testing::run({KLINGQ_SIM_BINARY, "--help"});
  CHECK(help.exit_code == 0);
  CHECK(help.out.find("--time-scale") != std::string::npos);
}

TEST_CASE("sim: 400 names the parameter, on both endpoints - unknown operations are GraphQL errors") {
  Sim sim({"--plan", "pro"});
  auto expect_400 = [&](const Reply& r, const std::string& parameter) {
    CHECK(r.status == 400);
    CHECK(r.code() == "BAD_USER_INPUT");
    CHECK(r.body.find(parameter) != std::string::npos);
    check_rate_headers(r);
  };
  auto with = [&](auto change) {
    auto input = generate_input("a fox");
    change(input);
    return sim.graphql(generate_body(input));
  };
  expect_400(with([](json::object& i) { i["input"] = json::object{{"text", ""}}; }), "input.text");
  expect_400(with([](json::object& i) { i["input"] = json::object{{"text", std::string(2501, 'x')}}; }), "input.text");
  expect_400(with([](json::object& i) { i["options"].as_object()["duration"] = 7; }), "duration");
  expect_400(with([](json::object& i) { i["options"].as_object()["aspectRatio"] = "4:3"; }), "aspectRatio");
  expect_400(with([](json::object& i) { i["options"].as_object()["version"] = "9.9"; }), "version");
  expect_400(with([](json::object& i) { i["options"].as_object()["quality"] = "max"; }), "quality");
  expect_400(with([](json::object& i) { i["type"] = "IMAGE"; }), "type");
  expect_400(with([](json::object& i) { i["provider"] = "runway"; }), "provider");
  expect_400(with([](json::object& i) { i["options"] = 5; }), "options");
  expect_400(with([](json::object& i) { i["webhookUrl"] = "mailto:x@y"; }), "webhookUrl");
  expect_400(sim.rest_submit({{"service", "kling"}}), "prompt");
  expect_400(sim.rest_submit({{"service", "other"}, {"prompt", "x"}}), "service");
  expect_400(sim.rest_submit({{"service", "kling"}, {"prompt", "x"}, {"duration", 6}}), "duration");
  auto unknown = sim.graphql(R"({"query": "mutation { launch(rocket: 1) { id } }"})");
  CHECK(unknown.status == 400);
  CHECK(unknown.json().at("errors").at(0).at("message").as_string().find("launch") != json::string::npos);
  CHECK(sim.graphql(R"({"query": "query { credits { balance "})").code() == "GRAPHQL_PARSE_FAILED");
  CHECK(sim.graphql("this is not json").status == 400);
  CHECK(sim.graphql(R"({"query": "{ job(id: \"none\") { id } }"})").status == 404);
  CHECK(sim.rest_get("/v1/jobs/none").status == 404);
  CHECK(sim.call(bhttp::verb::get, "/graphql", "", {{"Authorization", "Bearer " + api_key}}).status == 405);
  auto s = sim.stats();
  CHECK(s.at("accepted") == 0);
  CHECK(s.at("bad_request") == 17);
  CHECK(s.at("not_found") == 2);
  // Still serving after all of that.
  CHECK(sim.graphql(generate_body(generate_input("fine"))).status == 200);
}

TEST_CASE("sim: the seed's inline-literal form, job(id) and credits queries, REST status and credits") {
  // Generation lasts 2 s real, so "processing" is still true however slow this build is.
  Sim sim({"--plan", "pro", "--time-scale", "1000", "--gen-seconds", "2000:2000", "--credits", "1000"});
  auto inline_query = R"({"query": "mutation { generate(input: {type: VIDEO, provider: \"kling\", input: {text: \"A serene landscape\"}, options: {duration: 10, aspectRatio: \"9:16\", version: \"2.1-master\", quality: \"high\"}}) { id status creditCost } }"})";
  auto r = sim.graphql(inline_query, "inline-1");
  REQUIRE(r.status == 200);
  CHECK(r.json().at("data").at("generate").at("creditCost") == 500);
  auto id = job_id(r);
  auto credits = sim.graphql(R"({"query": "query { credits { balance } }"})");
  CHECK(credits.json().at("data").at("credits").at("balance") == 500);
  CHECK(sim.rest_get("/v1/credits").json().at("balance") == 500);
  // 2000 simulated seconds = 2 s real. Polling the job itself would spend the request
  // window; the control endpoint does not.
  auto query = json::serialize(json::object{
      {"query", "query Job($id: ID!) { job(id: $id) { id status url metadata creditCost error } }"},
      {"variables", json::object{{"id", id}}}});
  CHECK(sim.graphql(query).json().at("data").at("job").at("status") == "processing");
  sim.wait_stats([](const json::object& s) { return s.at("jobs").at("completed") == 1; });
  auto job = sim.graphql(query).json().at("data").at("job").as_object();
  CHECK(job.at("status") == "completed");
  CHECK(job.at("url").as_string() == "https://cdn.doitong.com/outputs/" + id + ".mp4");
  CHECK(job.at("metadata").at("width") == 1920);
  CHECK(job.at("metadata").at("duration") == 10);
  auto rest = sim.rest_get("/v1/jobs/" + id).json().at("data").at("generatevideo").as_object();
  CHECK(rest.at("status") == "completed");
  CHECK(rest.at("duration") == 10);
}

TEST_CASE("sim: the request window refuses the 11th request and reopens at its reset") {
  Sim sim({"--plan", "free", "--time-scale", "100"});  // 60 s window = 600 ms real
  std::vector<Reply> replies;
  for (int i = 0; i < 10; ++i) replies.push_back(sim.rest_get("/v1/credits"));
  for (auto& r : replies) CHECK(r.status == 200);
  CHECK(replies.back().header("X-RateLimit-Remaining") == "0");
  auto refused = sim.rest_get("/v1/credits");
  if (refused.status == 200) {
    // The 10 requests straddled a window boundary (600 ms real): rare, start over.
    for (int i = 0; i < 10 && refused.status == 200; ++i) refused = sim.rest_get("/v1/credits");
  }
  REQUIRE(refused.status == 429);
  CHECK(refused.code() == "RATE_LIMITED");
  CHECK(refused.json().at("errors").at(0).at("extensions").at("window") == "rpm");
  CHECK(refused.header("Retry-After") == "1");
  check_rate_headers(refused);
  auto reset = std::stoll(refused.header("X-RateLimit-Reset"));
  CHECK(reset > now_ms() - 5);
  CHECK(reset <= now_ms() + 600);
  // Poll until the window reopens: it must not before Reset, must soon after.
  auto until = std::chrono::steady_clock::now() + 5s;
  Reply again;
  do {
    again = sim.rest_get("/v1/credits");
  } while (again.status == 429 && std::chrono::steady_clock::now() < until);
  CHECK(again.status == 200);
  CHECK(now_ms() >= reset);
  auto s = sim.stats();
  CHECK(as_int(s.at("rate_limited").at("rpm")) >= 1);
  CHECK(s.at("max_window_requests_seen") == 10);
}

TEST_CASE("sim: parallel slots free up when jobs finish - daily resets at simulated midnight") {
  SUBCASE("parallel") {
    Sim sim({"--plan", "starter", "--time-scale", "100", "--gen-seconds", "30:30"});
    for (int i = 0; i < 3; ++i) CHECK(sim.graphql(generate_body(generate_input("p" + std::to_string(i)))).status == 200);
    auto refused = sim.graphql(generate_body(generate_input("p3")));
    REQUIRE(refused.status == 429);
    CHECK(refused.json().at("errors").at(0).at("extensions").at("window") == "parallel");
    CHECK(refused.header("X-RateLimit-Remaining-Parallel") == "0");
    CHECK(refused.has("Retry-After"));
    sim.wait_stats([](const json::object& s) { return s.at("jobs").at("completed") == 3; });
    CHECK(sim.graphql(generate_body(generate_input("p3"))).status == 200);
    auto s = sim.stats();
    CHECK(s.at("max_parallel_seen") == 3);
    CHECK(s.at("rate_limited").at("parallel") == 1);
  }
  SUBCASE("daily") {
    auto start = std::chrono::system_clock::now();
    Sim sim({"--plan", "pro", "--daily", "2", "--time-scale", "10", "--gen-seconds", "1:1", "--clock-start",
             "2026-06-30T23:59:55Z"});
    CHECK(sim.graphql(generate_body(generate_input("d1"))).status == 200);
    CHECK(sim.graphql(generate_body(generate_input("d2"))).status == 200);
    auto refused = sim.graphql(generate_body(generate_input("d3")));
    REQUIRE(refused.status == 429);
    CHECK(refused.json().at("errors").at(0).at("extensions").at("window") == "daily");
    CHECK(refused.header("X-RateLimit-Remaining-Day") == "0");
    CHECK(refused.header("Retry-After") == "1");
    // Midnight is 5 simulated seconds after start: 500 ms real.
    auto reset_day = std::stoll(refused.header("X-RateLimit-Reset-Day"));
    auto start_ms = std::chrono::duration_cast<std::chrono::milliseconds>(start.time_since_epoch()).count();
    CHECK(reset_day >= start_ms + 450);
    // The simulator started after `start` and before now: midnight is 500 ms after that.
    CHECK(reset_day <= now_ms() + 550);
    // Poll the stats (they spend no request budget) until the simulated clock passes
    // midnight; the day's quota is back at once.
    sim.wait_stats([](const json::object& s) { return s.at("sim_time").as_string() >= "2026-07-01T00:00:00Z"; });
    CHECK(now_ms() >= reset_day);
    auto after = sim.graphql(generate_body(generate_input("d3")));
    CHECK(after.status == 200);
    CHECK(after.header("X-RateLimit-Remaining-Day") == "1");
    CHECK(sim.stats().at("rate_limited").at("daily") == 1);
  }
}

TEST_CASE("sim: idempotency replays the same job, conflicts name the key, jobs map one-to-one") {
  Sim sim({"--plan", "free", "--time-scale", "1"});
  auto input = generate_input("a lighthouse");
  auto first = sim.graphql(generate_body(input), "idem-1");
  REQUIRE(first.status == 200);
  auto replay = sim.graphql(generate_body(input), "idem-1");
  REQUIRE(replay.status == 200);  // the free plan's single slot is not needed twice
  CHECK(job_id(replay) == job_id(first));
  auto rest = sim.rest_submit({{"service", "kling"}, {"prompt", "a lighthouse"}, {"duration", 5}}, "idem-1");
  REQUIRE(rest.status == 200);
  CHECK(job_id(rest, "generatevideo") == job_id(first));
  auto conflict = sim.graphql(generate_body(generate_input("a different lighthouse")), "idem-1");
  CHECK(conflict.status == 409);
  CHECK(conflict.code() == "CONFLICT");
  CHECK(conflict.body.find("idem-1") != std::string::npos);
  check_rate_headers(conflict);
  auto s = sim.stats();
  CHECK(s.at("accepted") == 1);
  CHECK(s.at("idempotent_replays") == 2);
  CHECK(s.at("conflicts") == 1);
  CHECK(s.at("duplicate_charges") == 0);
  CHECK(s.at("credits_spent") == 100);
  auto jobs = sim.jobs();
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0].at("idempotencyKey") == "idem-1");
  CHECK(jobs[0].at("id").as_string() == job_id(first));
}

TEST_CASE("sim: credits are charged by the table, 402 when short, refunded on failure") {
  // Jobs take 300 ms real: long enough that none is refunded before the 402.
  Sim sim({"--plan", "pro", "--credits", "1000", "--time-scale", "1000", "--gen-seconds", "300:300",
           "--fail-rate", "1"});
  CHECK(sim.graphql(generate_body(generate_input("a", 10, "high"))).json().at("data").at("generate").at("creditCost") == 500);
  CHECK(sim.graphql(generate_body(generate_input("b", 5, "high"))).json().at("data").at("generate").at("creditCost") == 300);
  CHECK(sim.graphql(generate_body(generate_input("c", 10, "standard"))).json().at("data").at("generate").at("creditCost") == 200);
  auto short_of = sim.graphql(generate_body(generate_input("d", 5, "standard")));
  REQUIRE(short_of.status == 402);
  auto ext = short_of.json().at("errors").at(0).at("extensions");
  CHECK(ext.at("code") == "INSUFFICIENT_CREDITS");
  CHECK(ext.at("creditsRequired") == 100);
  CHECK(ext.at("creditsAvailable") == 0);
  check_rate_headers(short_of);
  auto s = sim.wait_stats([](const json::object& s) { return s.at("jobs").at("failed") == 3; });
  CHECK(s.at("credits_balance") == 1000);
  CHECK(s.at("credits_refunded") == 1000);
  CHECK(s.at("credits_spent") == 0);
  CHECK(s.at("payment_required") == 1);
  auto failed = sim.rest_get("/v1/jobs/" + std::string(sim.jobs()[0].at("id").as_string()));
  CHECK(failed.json().at("data").at("generatevideo").at("status") == "failed");
  CHECK_FALSE(failed.json().at("data").at("generatevideo").at("error").as_string().empty());
  CHECK(sim.graphql(generate_body(generate_input("e", 5, "standard"))).status == 200);  // refunded credits spend again
}

TEST_CASE("sim: webhooks are signed with HMAC-SHA256 over the raw body and carry the payload") {
  Receiver receiver;
  Sim sim({"--plan", "pro", "--time-scale", "1000", "--gen-seconds", "10:10"});
  auto id = job_id(sim.graphql(generate_body(generate_input("hooked", 5, "standard", receiver.url()))));
  auto hooks = receiver.wait_for(1);
  REQUIRE(hooks.size() == 1);
  // Independent check: our own HMAC of the exact bytes received.
  CHECK(hooks[0].signature == "sha256=" + klingq::webhook::hmac_sha256_hex(webhook_secret, hooks[0].body));
  CHECK(hooks[0].signature != "sha256=" + klingq::webhook::hmac_sha256_hex("other", hooks[0].body));
  auto payload = json::parse(hooks[0].body).as_object();
  CHECK(payload.at("id").as_string() == id);
  CHECK(payload.at("status") == "completed");
  CHECK(payload.at("service") == "kling");
  CHECK(payload.at("url").as_string() == "https://cdn.doitong.com/outputs/" + id + ".mp4");
  CHECK(payload.at("metadata").at("duration") == 5);
  CHECK(payload.at("metadata").at("width") == 1920);
  CHECK(payload.at("metadata").at("height") == 1080);
  CHECK(payload.contains("createdAt"));
  CHECK(payload.contains("completedAt"));
  CHECK(receiver.last_target() == "/hooks/kling?src=sim");
  // A receiver error is retried.
  receiver.fail_next = true;
  sim.graphql(generate_body(generate_input("retried", 5, "standard", receiver.url())));
  receiver.wait_for(2);
  auto s = sim.wait_stats([](const json::object& s) { return s.at("webhooks").at("delivered") == 2; });
  CHECK(s.at("webhooks").at("attempts") == 3);
  CHECK(s.at("webhooks").at("failed") == 0);
}

TEST_CASE("sim: webhook delivery faults") {
  Receiver receiver;
  SUBCASE("duplicate") {
    Sim sim({"--plan", "pro", "--time-scale", "1000", "--gen-seconds", "1:1", "--webhook-duplicate", "1"});
    sim.graphql(generate_body(generate_input("twice", 5, "standard", receiver.url())));
    auto hooks = receiver.wait_for(2);
    CHECK(hooks[0].body == hooks[1].body);
    CHECK(sim.stats().at("webhooks").at("duplicated") == 1);
  }
  SUBCASE("drop") {
    Sim sim({"--plan", "pro", "--time-scale", "1000", "--gen-seconds", "1:1", "--webhook-drop", "1"});
    sim.graphql(generate_body(generate_input("lost", 5, "standard", receiver.url())));
    auto s = sim.wait_stats([](const json::object& s) { return s.at("webhooks").at("dropped") == 1; });
    CHECK(s.at("webhooks").at("attempts") == 0);
    CHECK(receiver.hooks().empty());
  }
  SUBCASE("delay") {
    Sim sim({"--plan", "pro", "--time-scale", "1000", "--gen-seconds", "1:1", "--webhook-delay", "1",
             "--webhook-delay-ms", "300"});
    auto started = std::chrono::steady_clock::now();
    sim.graphql(generate_body(generate_input("late", 5, "standard", receiver.url())));
    receiver.wait_for(1);
    CHECK(std::chrono::steady_clock::now() - started >= 300ms);
    CHECK(sim.stats().at("webhooks").at("delayed") == 1);
  }
  SUBCASE("reorder") {
    Sim sim({"--plan", "pro", "--time-scale", "1000", "--gen-seconds", "10:10", "--webhook-reorder", "0.5",
             "--seed", "7"});
    std::vector<std::string> order;
    for (int i = 0; i < 12; ++i) {
      order.push_back(job_id(sim.graphql(generate_body(generate_input("r" + std::to_string(i), 5, "standard", receiver.url())))));
      // Jobs finish one after another: wait for each completion before the next submit.
      sim.wait_stats([&](const json::object& s) { return as_int(s.at("jobs").at("completed")) == i + 1; });
    }
    auto hooks = receiver.wait_for(12);
    auto s = sim.stats();
    CHECK(as_int(s.at("webhooks").at("reordered")) > 0);
    std::vector<std::string> arrived;
    for (auto& h : hooks) arrived.push_back(std::string(json::parse(h.body).at("id").as_string()));
    CHECK(std::set(arrived.begin(), arrived.end()) == std::set(order.begin(), order.end()));
    CHECK(arrived != order);
  }
}

TEST_CASE("sim: HTTP faults") {
  auto body = generate_body(generate_input("faulty"));
  SUBCASE("500") {
    Sim sim({"--plan", "pro", "--fault-500", "1"});
    auto r = sim.graphql(body, "f-500");
    CHECK(r.status == 500);
    CHECK(r.code() == "INTERNAL_SERVER_ERROR");
    check_rate_headers(r);
    CHECK(sim.stats().at("accepted") == 0);
    CHECK(sim.stats().at("server_errors") == 1);
  }
  SUBCASE("502/503") {
    Sim sim({"--plan", "enterprise", "--fault-503", "1"});
    std::set<unsigned> seen;
    for (int i = 0; i < 20; ++i) seen.insert(sim.graphql(body).status);
    CHECK(seen == std::set<unsigned>{502, 503});
    CHECK(sim.stats().at("accepted") == 0);
  }
  SUBCASE("slow") {
    Sim sim({"--plan", "pro", "--fault-slow", "1", "--slow-ms", "300"});
    auto r = sim.graphql(body, "f-slow");
    CHECK(r.status == 200);
    CHECK(r.elapsed >= 300ms);
    CHECK(sim.stats().at("faults").at("slow") == 1);
  }
  SUBCASE("reset before: no answer, no job") {
    Sim sim({"--plan", "pro", "--fault-reset-before", "1"});
    auto r = sim.graphql(body, "f-rb");
    CHECK(r.error);
    CHECK(r.status == 0);
    auto s = sim.stats();
    CHECK(s.at("accepted") == 0);
    CHECK(s.at("faults").at("reset_before") == 1);
  }
  SUBCASE("reset after: no answer, but the job exists; the retry with the same key gets it") {
    Sim sim({"--plan", "pro", "--fault-reset-after", "1"});
    auto r = sim.graphql(body, "f-ra");
    CHECK(r.error);
    CHECK(sim.stats().at("accepted") == 1);
    CHECK(sim.stats().at("credits_spent") == 100);
    sim.configure({{"fault_reset_after", 0}});
    auto retry = sim.graphql(body, "f-ra");
    REQUIRE(retry.status == 200);
    CHECK(job_id(retry) == std::string(sim.jobs().at(0).at("id").as_string()));
    auto s = sim.stats();
    CHECK(s.at("accepted") == 1);
    CHECK(s.at("idempotent_replays") == 1);
    CHECK(s.at("duplicate_charges") == 0);
    CHECK(s.at("credits_spent") == 100);
  }
  SUBCASE("malformed: 200 with a body that does not parse") {
    Sim sim({"--plan", "pro", "--fault-malformed", "1"});
    auto r = sim.graphql(body, "f-mal");
    CHECK(r.status == 200);
    json::error_code ec;
    json::parse(r.body, ec);
    CHECK(ec);
    CHECK(sim.stats().at("faults").at("malformed") == 1);
  }
  SUBCASE("429 without headers") {
    Sim sim({"--plan", "pro", "--fault-429-bare", "1"});
    auto r = sim.graphql(body, "f-429");
    CHECK(r.status == 429);
    for (const char* h : rate_headers) CHECK_FALSE(r.has(h));
    CHECK_FALSE(r.has("Retry-After"));
    CHECK(sim.stats().at("accepted") == 0);
  }
}

TEST_CASE("sim: a plan downgrade through /_sim/config applies mid-run - reset restores the start") {
  Sim sim({"--plan", "pro", "--time-scale", "1"});
  for (int i = 0; i < 5; ++i) REQUIRE(sim.graphql(generate_body(generate_input("j" + std::to_string(i)))).status == 200);
  auto config = sim.configure({{"plan", "free"}});
  CHECK(config.at("limits").at("rpm") == 10);
  CHECK(config.at("limits").at("parallel") == 1);
  auto refused = sim.graphql(generate_body(generate_input("after")));
  CHECK(refused.status == 429);
  CHECK(refused.json().at("errors").at(0).at("extensions").at("window") == "parallel");
  CHECK(refused.header("X-RateLimit-Limit") == "10");
  CHECK(refused.header("X-RateLimit-Limit-Parallel") == "1");
  CHECK(refused.header("X-RateLimit-Limit-Day") == "100");
  auto bad = sim.call(bhttp::verb::post, "/_sim/config", R"({"plan": "platinum"})");
  CHECK(bad.status == 400);
  CHECK(bad.body.find("plan") != std::string::npos);
  auto credits = sim.configure({{"credits", 50}});
  CHECK(credits.at("credits") == 50);
  CHECK(sim.rest_get("/v1/credits").json().at("balance") == 50);
  auto reset = sim.call(bhttp::verb::post, "/_sim/reset");
  CHECK(reset.status == 200);
  auto s = sim.stats();
  CHECK(s.at("requests") == 0);
  CHECK(s.at("jobs").at("total") == 0);
  CHECK(s.at("credits_balance") == 100000);
  CHECK(sim.call(bhttp::verb::get, "/_sim/config").json().at("plan") == "pro");
}

TEST_CASE("sim: concurrent clients with unique keys: every job once, no double charge") {
  Sim sim({"--plan", "enterprise", "--time-scale", "1000", "--gen-seconds", "1:5"});
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        auto key = "c-" + std::to_string(t) + "-" + std::to_string(i);
        auto r = sim.graphql(generate_body(generate_input(key)), key);
        // Each key twice: the second must be a replay.
        auto again = sim.graphql(generate_body(generate_input(key)), key);
        if (r.status == 200 && again.status == 200 && job_id(r) == job_id(again)) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(ok == 200);
  auto s = sim.wait_stats([](const json::object& s) { return s.at("jobs").at("completed") == 200; });
  CHECK(s.at("accepted") == 200);
  CHECK(s.at("idempotent_replays") == 200);
  CHECK(s.at("duplicate_charges") == 0);
  CHECK(s.at("accepted_keys") == 200);
  std::set<std::string> keys, ids;
  for (auto& j : sim.jobs()) {
    keys.insert(std::string(j.at("idempotencyKey").as_string()));
    ids.insert(std::string(j.at("id").as_string()));
  }
  CHECK(keys.size() == 200);
  CHECK(ids.size() == 200);
}
