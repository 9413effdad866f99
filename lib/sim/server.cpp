// klingq-sim's I/O around the sans-io Api: see server.hpp. The only simulator file that
// includes Beast's I/O headers (each such file costs ~12 s to compile).
//
// The Api decides which faults a reply carries (ApiReply::close_without_response,
// truncate_body_at); this file turns them into the http::Server's neutral Delivery
// instructions, so lib/http knows how to break a connection but not why.
//
// Webhooks go out through klingq::http::Client, one keep-alive pool per receiver origin.
#include "sim/server.hpp"

#include "http/client.hpp"
#include "http/server.hpp"
#include "sim/api.hpp"
#include "util/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <exception>
#include <unordered_map>

namespace klingq::sim {

namespace asio = boost::asio;
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

// A webhook URL split into the client's base URL (scheme and authority) and the request
// target (path and query); nullopt when it is not http(s).
struct WebhookTarget {
  std::string origin;
  std::string target;
};

std::optional<WebhookTarget> split_webhook_url(std::string_view url) {
  auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::nullopt;
  auto scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") return std::nullopt;
  auto path_start = url.find_first_of("/?#", scheme_end + 3);
  WebhookTarget t;
  t.origin = std::string(url.substr(0, path_start));
  t.target = path_start == std::string_view::npos ? "/" : std::string(url.substr(path_start));
  if (auto fragment = t.target.find('#'); fragment != std::string::npos) t.target.erase(fragment);
  if (t.target.empty() || t.target.front() != '/') t.target.insert(0, "/");
  return t;
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
  // One client (keep-alive pool) per receiver origin, created on first use.
  std::unordered_map<std::string, std::unique_ptr<http::Client>> webhook_clients;
  std::chrono::steady_clock::time_point held_since;

  asio::awaitable<http::Reply> handle(http::Request request) {
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
    http::Reply out{http::make_response(reply.status, std::move(reply.body), reply.content_type)};
    for (auto& [name, value] : reply.headers) out.response.set(name, value);
    if (reply.close_without_response) {
      // Reset before or after acting on the request: the client gets no answer at all.
      out.delivery = http::Delivery::reset;
    } else if (reply.truncate_body_at) {
      // A download cut short: the whole length announced, part of the body sent.
      out.delivery = http::Delivery::reset_mid_body;
      out.body_bytes_before_reset = *reply.truncate_body_at;
    }
    co_return out;
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
    auto target = split_webhook_url(d.url);
    http::Client* client = target ? self->client_for(target->origin) : nullptr;
    if (!client) {
      ++stats.webhooks_failed;
      log::warning("sim_webhook_bad_url", {{"job", d.job_id}});
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
        http::ClientRequest post;
        post.method = bhttp::verb::post;
        post.target = target->target;
        post.headers = {{"Content-Type", "application/json"}, {"X-Doitong-Signature", d.signature}};
        post.body = d.body;
        auto result = co_await client->request(std::move(post));
        auto error = result.error;
        auto status = result.response.status;
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

  http::Client* client_for(const std::string& origin) {
    auto& client = webhook_clients[origin];
    if (!client) {
      try {
        http::ClientOptions options;
        options.max_connections = 8;
        options.timeout = webhook_timeout;
        options.body_limit = 64 * 1024;
        client = std::make_unique<http::Client>(executor, origin, options);
      } catch (const std::invalid_argument&) {
        webhook_clients.erase(origin);
        return nullptr;
      }
    }
    return client.get();
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
      executor, http::ServerOptions{}, [weak](http::Request request) -> asio::awaitable<http::Reply> {
        auto state = weak.lock();
        if (!state) co_return http::Reply{http::make_response(503, R"({"error":"shutting down"})")};
        co_return co_await state->handle(std::move(request));
      });
}

Simulator::~Simulator() { stop(); }

bool Simulator::busy() const {
  return state_->deliveries_in_flight > 0 || state_->server->connection_count() > 0;
}

tcp::endpoint Simulator::listen(const std::string& host_port) {
  auto bound = state_->server->listen(host_port);
  // Videos are served from the address actually bound (port 0 picks one).
  auto address = bound.address();
  auto host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  state_->api.account().set_output_origin("http://" + host + ":" + std::to_string(bound.port()));
  return bound;
}

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
    for (auto& [origin, client] : state->webhook_clients) client->close_idle();
  });
}

}  // namespace klingq::sim
