// The pooled HTTP/1.1 client behind client.hpp. It owns the connection pool, the slot
// queue that caps open connections, and the single deadline of each exchange; opening a
// connection (resolve, connect, TLS) is connect.cpp's. With connect.cpp, streaming.cpp
// and server.cpp it is one of the few files that include Beast's I/O headers.
//
// Model: a request first takes a slot (at most max_connections are handed out; waiters
// queue FIFO on a timer each, no polling). With a slot it may hold one connection: an
// idle pooled one if any still looks open, else a fresh one. A new connection is only
// opened when the pool is empty, so open connections never exceed the slots in use.
//
// Everything runs on the client's executor; State is shared with every running
// request() so a Client may be destroyed while exchanges are still finishing. The
// class is for many coroutines on one thread (or a strand), not for several threads.
#include "http/client.hpp"

#include "http/address.hpp"
#include "http/connection.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <sys/socket.h>

#include <cerrno>
#include <deque>
#include <stdexcept>

namespace klingq::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

// Failures are values: the caller gets them in ClientResult, never as exceptions.
constexpr auto as_result = asio::as_tuple(asio::use_awaitable);

// Response headers beyond this are an error like an oversized body; Beast's default
// (8 KiB) is tight for APIs that send long rate-limit and tracing headers.
constexpr std::uint32_t response_header_limit = 64 * 1024;

using OutgoingRequest = bhttp::request<bhttp::string_body>;

// A request waiting for a slot. release_slot() hands the slot over directly (granted)
// and wakes it by cancelling the timer, so a newcomer cannot overtake the queue.
struct SlotWaiter {
  explicit SlotWaiter(const asio::any_io_executor& executor) : timer(executor) {
    timer.expires_at(asio::steady_timer::time_point::max());
  }
  asio::steady_timer timer;
  bool granted = false;
};

// Everything the request coroutines share (at namespace scope so that the free
// functions below can name it; Client::State merely derives from it).
struct ClientState {
  ClientState(asio::any_io_executor executor_in, BaseUrl url_in, ClientOptions options_in)
      : executor(std::move(executor_in)),
        url(std::move(url_in)),
        options(options_in),
        connector(executor, options.connect),
        free_slots(options.max_connections) {}

  asio::any_io_executor executor;
  BaseUrl url;
  ClientOptions options;
  // Opens every connection of the pool (its TLS context is shared by all of them).
  Connector connector;
  // Open connections not in use, most recently used last (the likeliest still open).
  std::vector<std::unique_ptr<Connection>> idle;
  // Slots not handed out; a slot is the right to hold one connection.
  std::size_t free_slots;
  std::deque<std::shared_ptr<SlotWaiter>> waiters;

  void release_slot() {
    if (!waiters.empty()) {
      auto next = std::move(waiters.front());
      waiters.pop_front();
      next->granted = true;
      next->timer.cancel();
      return;
    }
    ++free_slots;
  }

  void close_idle_now() {
    for (auto& connection : idle) connection->lowest().close();
    idle.clear();
  }
};

// Returns the slot when the request ends, however it ends (a result, an exception, or
// the coroutine frame destroyed with its io_context).
struct SlotGuard {
  ClientState& state;
  ~SlotGuard() { state.release_slot(); }
};

// False only when the wait was cancelled (the caller's coroutine was cancelled).
asio::awaitable<bool> acquire_slot(ClientState& state) {
  if (state.free_slots > 0 && state.waiters.empty()) {
    --state.free_slots;
    co_return true;
  }
  auto waiter = std::make_shared<SlotWaiter>(state.executor);
  state.waiters.push_back(waiter);
  co_await waiter->timer.async_wait(as_result);
  if (waiter->granted) co_return true;
  std::erase(state.waiters, waiter);
  co_return false;
}

// A pooled connection the server has closed meanwhile (its keep-alive timeout) shows
// as readable EOF. Peeking without blocking catches most such connections before we
// write to them, which spares a retry and a "maybe delivered" on the caller's side.
// Bytes waiting unasked for (a TLS close_notify, garbage) also disqualify it.
bool looks_open(Connection& connection) {
  if (connection.buffer.size() != 0) return false;
  auto& socket = connection.lowest().socket();
  if (!socket.is_open()) return false;
  char byte = 0;
  auto received = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

std::unique_ptr<Connection> take_idle(ClientState& state) {
  while (!state.idle.empty()) {
    auto connection = std::move(state.idle.back());
    state.idle.pop_back();
    if (looks_open(*connection)) return connection;
    connection->lowest().close();
  }
  return nullptr;
}

// Errors by which a reused connection shows it was already closed by the server. Only
// these, and only before any response byte, make the exchange safe to repeat.
bool is_stale_connection_error(const error_code& error) {
  return error == asio::error::eof || error == asio::error::connection_reset ||
         error == asio::error::broken_pipe || error == asio::error::connection_aborted ||
         error == bhttp::error::end_of_stream || error == ssl::error::stream_truncated;
}

struct Exchanged {
  error_code error;
  // The parser saw at least one byte of the response; after that nothing is retried.
  bool got_response_bytes = false;
  bhttp::response<bhttp::string_body> response;
};

template <class Stream>
asio::awaitable<Exchanged> exchange_on(Stream& stream, Connection& connection,
                                       const OutgoingRequest& message, bool head_request,
                                       std::size_t body_limit) {
  Exchanged out;
  auto [write_error, written] = co_await bhttp::async_write(stream, message, as_result);
  if (write_error) {
    out.error = write_error;
    co_return out;
  }
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(body_limit);
  parser.header_limit(response_header_limit);
  // A response to HEAD announces a length but carries no body.
  parser.skip(head_request);
  auto [read_error, read] = co_await bhttp::async_read(stream, connection.buffer, parser, as_result);
  out.got_response_bytes = parser.got_some();
  if (read_error) {
    out.error = read_error;
    co_return out;
  }
  out.response = parser.release();
  co_return out;
}

// Write the request and read the response on one connection, under the deadline.
asio::awaitable<Exchanged> exchange(Connection& connection, const OutgoingRequest& message,
                                    Clock::time_point deadline, std::size_t body_limit) {
  bool head_request = message.method() == bhttp::verb::head;
  connection.lowest().expires_at(deadline);
  if (connection.tls) {
    co_return co_await exchange_on(*connection.tls, connection, message, head_request, body_limit);
  }
  co_return co_await exchange_on(*connection.plain, connection, message, head_request, body_limit);
}

// `proxy`: plain http through a proxy, which takes the request in absolute form
// (RFC 9112 section 3.2.2) with our credentials for it; null for a direct connection.
OutgoingRequest build_request(const BaseUrl& url, ClientRequest& request, const Proxy* proxy) {
  auto target = join_target(url.path_prefix, request.target);
  if (proxy) target = "http://" + url.host_header + target;
  OutgoingRequest message{request.method, target, 11};
  message.set(bhttp::field::host, url.host_header);
  if (proxy && !proxy->authorization.empty()) message.set(bhttp::field::proxy_authorization, proxy->authorization);
  message.keep_alive(true);
  // The caller's headers come last so that it can override Host or Connection.
  for (auto& [name, value] : request.headers) message.set(name, value);
  bool carries_body = !request.body.empty() || request.method == bhttp::verb::post ||
                      request.method == bhttp::verb::put || request.method == bhttp::verb::patch;
  if (carries_body) {
    message.body() = std::move(request.body);
    message.prepare_payload();  // Content-Length, also "0" for an empty POST
  }
  return message;
}

}  // namespace

struct Client::State : ClientState {
  using ClientState::ClientState;
};

Client::Client(asio::any_io_executor executor, const std::string& base_url, ClientOptions options) {
  if (options.max_connections == 0) {
    throw std::invalid_argument("http client: max_connections must be at least 1");
  }
  if (options.timeout <= std::chrono::milliseconds::zero()) {
    throw std::invalid_argument("http client: timeout must be positive");
  }
  state_ = std::make_shared<State>(std::move(executor), parse_base_url(base_url), options);
}

Client::~Client() {
  // Requests still running keep the shared state; the idle pool has no owner after this.
  close_idle();
}

asio::awaitable<ClientResult> Client::request(ClientRequest request) {
  // Only the shared state is used below: *this may be destroyed while we wait.
  auto state = state_;
  auto started = Clock::now();
  ClientResult result;
  auto finish = [&] {
    result.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started);
    return std::move(result);
  };

  if (!co_await acquire_slot(*state)) {
    result.error = asio::error::operation_aborted;
    co_return finish();
  }
  SlotGuard slot{*state};
  const Origin origin{state->url.tls, state->url.host, state->url.port};
  const Proxy* proxy = proxy_for(state->options.connect, origin);
  auto message = build_request(state->url, request, origin.tls ? nullptr : proxy);
  // The deadline covers the exchange, not the queue for a slot: the queue is bounded by
  // the deadlines of the exchanges ahead of us.
  auto deadline = Clock::now() + state->options.timeout;

  auto connection = take_idle(*state);
  bool retried = false;
  for (;;) {
    bool reused = connection != nullptr;
    if (!reused) {
      auto connected =
          co_await state->connector.connect(origin, deadline);
      if (connected.error) {
        result.error = connected.error;
        result.error_detail = std::move(connected.detail);
        break;
      }
      connection = std::move(connected.connection);
    }
    // From here on the request may reach the server, whatever happens next.
    result.maybe_delivered = true;
    auto exchanged = co_await exchange(*connection, message, deadline, state->options.body_limit);
    if (!exchanged.error) {
      auto& response = exchanged.response;
      result.response.status = response.result_int();
      result.response.body = std::move(response.body());
      bool reusable = !response.need_eof() && message.keep_alive() && connection->buffer.size() == 0;
      result.response.headers = std::move(static_cast<bhttp::fields&>(response.base()));
      if (reusable) {
        state->idle.push_back(std::move(connection));
      } else {
        connection->lowest().close();
      }
      break;
    }
    connection->lowest().close();
    connection.reset();
    // A kept-alive connection the server closed just as we used it: the server saw at
    // most a request it did not answer, so one more try on a fresh connection is safe
    // (the caller's idempotency key is the same). Timeouts are never retried: the
    // server may still be working on the request.
    if (reused && !retried && !exchanged.got_response_bytes &&
        is_stale_connection_error(exchanged.error) && Clock::now() < deadline) {
      retried = true;
      continue;
    }
    result.error = exchanged.error;
    break;
  }
  co_return finish();
}

const ConnectOptions& Client::connect_options() const { return state_->options.connect; }

void Client::close_idle() {
  // Sockets are only touched on the executor; from another thread this is queued.
  asio::dispatch(state_->executor, [state = state_] { state->close_idle_now(); });
}

}  // namespace klingq::http
