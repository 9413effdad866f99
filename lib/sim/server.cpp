// klingq-sim's I/O around the sans-io Api: see server.hpp. The only simulator file that
// includes Beast's I/O headers (each such file costs ~12 s to compile).
//
// Webhooks go out through a minimal one-shot HTTP/1.1 POST (one connection per
// delivery, plain http only): the simulator posts to test receivers on 127.0.0.1, and
// keeping this here spares lib/sim a dependency on the API client's pool.
#include "sim/server.hpp"

#include "http/server.hpp"
#include "sim/api.hpp"
#include "util/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <chrono>
#include <exception>

namespace klingq::sim {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

constexpr auto as_result = asio::as_tuple(asio::use_awaitable);

// The job timer wakes at least this often, so a job accepted after it went to sleep
// (with a short generation time under a large time scale) is not finished late.
constexpr auto max_tick = 20ms;
// Webhook delivery: attempts per copy, first backoff (doubling), one exchange's deadline.
constexpr int webhook_attempts = 4;
constexpr auto webhook_backoff = 200ms;
constexpr auto webhook_timeout = 5s;
// A reordered webhook waits for the next delivery at most this long.
constexpr auto max_reorder_hold = 1s;

struct WebhookTarget {
  std::string host;
  std::string port;
  std::string host_header;
  std::string target;  // path and query
};

// "http://host[:port][/path][?query]" → parts; nullopt for anything else (https too:
// this one-shot client speaks plain HTTP only).
std::optional<WebhookTarget> parse_webhook_url(std::string_view url) {
  constexpr std::string_view scheme = "http://";
  if (!url.starts_with(scheme)) return std::nullopt;
  auto rest = url.substr(scheme.size());
  auto slash = rest.find_first_of("/?");
  auto authority = rest.substr(0, slash);
  WebhookTarget t;
  t.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (t.target.front() == '?') t.target.insert(0, "/");
  t.host_header = std::string(authority);
  if (authority.starts_with("[")) {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    t.host = std::string(authority.substr(1, close - 1));
    auto after = authority.substr(close + 1);
    t.port = after.starts_with(":") ? std::string(after.substr(1)) : "80";
  } else {
    auto colon = authority.rfind(':');
    t.host = std::string(authority.substr(0, colon));
    t.port = colon == std::string_view::npos ? "80" : std::string(authority.substr(colon + 1));
  }
  if (t.host.empty() || t.port.empty()) return std::nullopt;
  return t;
}

// One POST; the error, else the response status.
asio::awaitable<std::pair<boost::system::error_code, unsigned>> post_once(asio::any_io_executor executor,
                                                                          const WebhookTarget& target,
                                                                          const WebhookDelivery& delivery) {
  tcp::resolver resolver(executor);
  auto [resolve_error, endpoints] =
      co_await resolver.async_resolve(target.host, target.port, tcp::resolver::numeric_service, as_result);
  if (resolve_error) co_return std::pair{resolve_error, 0u};
  beast::tcp_stream stream(executor);
  stream.expires_after(webhook_timeout);
  auto [connect_error, endpoint] = co_await stream.async_connect(endpoints, as_result);
  if (connect_error) co_return std::pair{connect_error, 0u};
  bhttp::request<bhttp::string_body> request{bhttp::verb::post, target.target, 11};
  request.set(bhttp::field::host, target.host_header);
  request.set(bhttp::field::user_agent, "klingq-sim");
  request.set(bhttp::field::content_type, "application/json");
  request.set("X-Doitong-Signature", delivery.signature);
  request.keep_alive(false);
  request.body() = delivery.body;
  request.prepare_payload();
  auto [write_error, written] = co_await bhttp::async_write(stream, request, as_result);
  if (write_error) co_return std::pair{write_error, 0u};
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(64 * 1024);
  auto [read_error, read] = co_await bhttp::async_read(stream, buffer, parser, as_result);
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  if (read_error) co_return std::pair{read_error, 0u};
  co_return std::pair{boost::system::error_code{}, parser.get().result_int()};
}

void log_failure(std::exception_ptr failure, const char* event) {
  if (!failure) return;
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    log::error(event, {{"error", e.what()}});
  }
}

}  // namespace

struct Simulator::State : std::enable_shared_from_this<Simulator::State> {
  State(asio::any_io_executor executor_in, const Options& options)
      : executor(std::move(executor_in)),
        api(options.settings, options.api_key, options.webhook_secret, options.time_scale,
            std::chrono::system_clock::now(), options.clock_start),
        timer(executor) {}

  asio::any_io_executor executor;
  Api api;
  std::unique_ptr<http::Server> server;  // created once `this` is owned by a shared_ptr
  asio::steady_timer timer;              // the job timer's sleep
  bool stopping = false;
  int deliveries_in_flight = 0;
  std::vector<WebhookDelivery> held;     // reordered deliveries waiting for the next one
  std::chrono::steady_clock::time_point held_since;

  asio::awaitable<http::Response> handle(http::Request request) {
    ApiRequest r;
    r.method = request.method_string();
    r.target = request.target();
    r.body = request.body();
    r.authorization = request[bhttp::field::authorization];
    r.api_key = request["X-API-Key"];
    if (auto it = request.find("Idempotency-Key"); it != request.end()) r.idempotency_key = it->value();
    auto reply = api.handle(r, std::chrono::system_clock::now());
    flush_webhooks();
    if (reply.delay.count() > 0) {
      asio::steady_timer wait(executor, reply.delay);
      co_await wait.async_wait(as_result);
    }
    auto response = http::make_response(reply.status, std::move(reply.body), reply.content_type);
    for (auto& [name, value] : reply.headers) response.set(name, value);
    if (reply.close_without_response) response.set(http::close_without_response_header, "1");
    co_return response;
  }

  // Jobs that finished become webhook deliveries, with their faults applied.
  void flush_webhooks() {
    auto deliveries = api.take_webhooks(std::chrono::system_clock::now());
    for (auto& d : deliveries) {
      if (d.faults.reorder) {
        if (held.empty()) held_since = std::chrono::steady_clock::now();
        held.push_back(std::move(d));
        continue;
      }
      auto delay = d.delay;
      spawn_delivery(std::move(d), delay);
      // What was held back goes out just after this one: out of order.
      for (auto& h : held) spawn_delivery(std::move(h), delay + 50ms + h.delay);
      held.clear();
    }
    if (!held.empty() && std::chrono::steady_clock::now() - held_since >= max_reorder_hold) {
      for (auto& h : held) spawn_delivery(std::move(h), h.delay);
      held.clear();
    }
  }

  void spawn_delivery(WebhookDelivery d, std::chrono::milliseconds delay) {
    asio::co_spawn(executor, deliver(shared_from_this(), std::move(d), delay),
                   [](std::exception_ptr e) { log_failure(e, "sim_webhook_failed"); });
  }

  static asio::awaitable<void> deliver(std::shared_ptr<State> self, WebhookDelivery d,
                                       std::chrono::milliseconds delay) {
    ++self->deliveries_in_flight;
    struct Done {
      State& state;
      ~Done() { --state.deliveries_in_flight; }
    } done{*self};
    auto& stats = self->api.account().stats();
    auto target = parse_webhook_url(d.url);
    if (!target) {
      ++stats.webhooks_failed;
      log::warning("sim_webhook_unsupported", {{"job", d.job_id}, {"reason", "only http:// URLs are delivered"}});
      co_return;
    }
    asio::steady_timer wait(self->executor);
    if (delay.count() > 0) {
      wait.expires_after(delay);
      co_await wait.async_wait(as_result);
    }
    int copies = d.faults.duplicate ? 2 : 1;
    for (int copy = 0; copy < copies; ++copy) {
      for (int attempt = 1;; ++attempt) {
        if (self->stopping) co_return;
        ++stats.webhooks_attempts;
        auto [error, status] = co_await post_once(self->executor, *target, d);
        if (!error && status >= 200 && status < 300) {
          ++stats.webhooks_delivered;
          break;
        }
        std::string what = error ? error.message() : "HTTP " + std::to_string(status);
        if (attempt == webhook_attempts) {
          ++stats.webhooks_failed;
          log::warning("sim_webhook_failed", {{"job", d.job_id}, {"error", what}});
          break;
        }
        log::debug("sim_webhook_retry", {{"job", d.job_id}, {"error", what}});
        wait.expires_after(webhook_backoff * (1 << (attempt - 1)));
        co_await wait.async_wait(as_result);
      }
    }
  }

  static asio::awaitable<void> job_timer(std::shared_ptr<State> self) {
    while (!self->stopping) {
      auto wait = std::chrono::duration_cast<std::chrono::steady_clock::duration>(max_tick);
      if (auto due = self->api.next_due_real()) {
        auto until = *due - std::chrono::system_clock::now();
        wait = std::clamp(std::chrono::duration_cast<std::chrono::steady_clock::duration>(until),
                          std::chrono::steady_clock::duration::zero(), wait);
      }
      self->timer.expires_after(wait);
      co_await self->timer.async_wait(as_result);
      if (self->stopping) break;
      self->flush_webhooks();
    }
  }
};

Simulator::Simulator(asio::any_io_executor executor, const Options& options)
    : state_(std::make_shared<State>(executor, options)) {
  std::weak_ptr<State> weak = state_;
  state_->server = std::make_unique<http::Server>(
      executor, http::ServerOptions{}, [weak](http::Request request) -> asio::awaitable<http::Response> {
        auto state = weak.lock();
        if (!state) co_return http::make_response(503, R"({"error":"shutting down"})");
        co_return co_await state->handle(std::move(request));
      });
}

Simulator::~Simulator() { stop(); }

bool Simulator::busy() const {
  return state_->deliveries_in_flight > 0 || state_->server->connection_count() > 0;
}

tcp::endpoint Simulator::listen(const std::string& host_port) { return state_->server->listen(host_port); }

void Simulator::start() {
  state_->server->start();
  asio::co_spawn(state_->executor, State::job_timer(state_),
                 [](std::exception_ptr e) { log_failure(e, "sim_job_timer_failed"); });
}

void Simulator::stop() {
  asio::dispatch(state_->executor, [state = state_] {
    if (state->stopping) return;
    state->stopping = true;
    state->server->stop();
    state->timer.cancel();
  });
}

}  // namespace klingq::sim
