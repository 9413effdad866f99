// The HTTP/1.1 server behind server.hpp, after Beast's http_server_awaitable example:
// one accept coroutine, one coroutine per connection, a deadline on every read and
// write, a body limit on every parser. This file and client.cpp are the only places
// that include Beast's I/O headers (each such file costs ~12 s to compile).
//
// Lifetime: everything the coroutines touch lives in State, which they hold through a
// shared_ptr, so a Server may be destroyed while connections are still finishing.
// stop() reaches the connections through a registry of weak_ptrs to their streams.
#include "http/server.hpp"

#include "http/address.hpp"
#include "util/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <system_error>
#include <tuple>
#include <unordered_map>
#include <utility>

namespace klingq::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

// Every asynchronous call reports its error as a value: a closed peer or a timeout is
// ordinary control flow here, not an exception.
constexpr auto as_result = asio::as_tuple(asio::use_awaitable);

// After an error response (400, 413) the peer may still be sending the rest of its
// request. Closing with unread bytes makes the kernel send RST, which can destroy our
// response before the client reads it, so we read and discard for at most this long.
constexpr std::chrono::milliseconds max_linger{2000};

// A connection as stop() sees it.
struct ConnectionEntry {
  std::weak_ptr<beast::tcp_stream> stream;
  // True from a complete request until its response is written: stop() lets these
  // finish and closes the others (waiting for a request, or part-way through one).
  bool busy = false;
};

// Everything the coroutines share. It lives at namespace scope (Server::State is private
// and merely derives from it) so that the free coroutine functions below can name it.
struct ServerState {
  ServerState(asio::any_io_executor executor_in, ServerOptions options_in, Handler handler_in,
              ReplyHandler reply_handler_in)
      : executor(std::move(executor_in)),
        options(options_in),
        handler(std::move(handler_in)),
        reply_handler(std::move(reply_handler_in)),
        acceptor(executor) {}

  asio::any_io_executor executor;
  ServerOptions options;
  // Exactly one of the two is set, by the constructor the owner chose. Two members
  // rather than one wrapped in the other: wrapping would cost every request of the
  // ordinary handlers one more coroutine frame.
  Handler handler;
  ReplyHandler reply_handler;
  tcp::acceptor acceptor;
  // Set once by stop(); connections check it before waiting for another request.
  bool stopping = false;
  // Guards connections and next_connection_id: connection_count() may be called from
  // any thread (tests, metrics), while the coroutines run on the executor.
  mutable std::mutex mutex;
  std::unordered_map<std::uint64_t, ConnectionEntry> connections;
  std::uint64_t next_connection_id = 0;
  // Every socket accept() returned; read from any thread.
  std::atomic<std::size_t> accepted{0};

  std::size_t count() const {
    std::lock_guard lock(mutex);
    return connections.size();
  }

  void set_busy(std::uint64_t id, bool busy) {
    std::lock_guard lock(mutex);
    if (auto it = connections.find(id); it != connections.end()) it->second.busy = busy;
  }

  // Runs on the executor: close the listening socket (the accept coroutine then ends
  // with operation_aborted) and every connection not in the middle of a response.
  void stop_on_executor() {
    if (stopping) return;
    stopping = true;
    error_code ignored;
    acceptor.close(ignored);
    std::vector<std::shared_ptr<beast::tcp_stream>> idle;
    {
      std::lock_guard lock(mutex);
      for (auto& [id, entry] : connections) {
        if (entry.busy) continue;
        if (auto stream = entry.stream.lock()) idle.push_back(std::move(stream));
      }
    }
    // Closing cancels the pending read; the connection coroutine then sees the error
    // and ends, unregistering itself.
    for (auto& stream : idle) stream->close();
  }
};

}  // namespace

struct Server::State : ServerState {
  using ServerState::ServerState;
};

namespace {

// Removes a connection from the registry when its coroutine ends, however it ends
// (including the coroutine frame being destroyed with the io_context).
struct Registration {
  std::shared_ptr<ServerState>& state;
  std::uint64_t id;
  ~Registration() {
    std::lock_guard lock(state->mutex);
    state->connections.erase(id);
  }
};

bool is_malformed_request(const error_code& error) {
  // Every parser error means the bytes were not HTTP we accept; the exceptions are the
  // peer closing (end_of_stream, partial_message) and the limits, handled separately.
  if (error.category() != bhttp::make_error_code(bhttp::error::bad_method).category()) {
    return false;
  }
  return error != bhttp::error::end_of_stream && error != bhttp::error::partial_message &&
         error != bhttp::error::body_limit && error != bhttp::error::header_limit &&
         error != bhttp::error::need_more && error != bhttp::error::need_buffer;
}

// Shuts down our side, then reads and drops what the peer still sends for a bounded
// time, so that the peer receives the response we just wrote instead of an RST.
asio::awaitable<void> linger_close(beast::tcp_stream& stream, std::chrono::milliseconds limit) {
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream.expires_after(limit);
  std::array<char, 4096> discard;
  for (;;) {
    auto [error, bytes] = co_await stream.async_read_some(asio::buffer(discard), as_result);
    if (error) break;
  }
  stream.close();
}

// Writes a small error response that also closes the connection.
asio::awaitable<void> reject(ServerState& state, beast::tcp_stream& stream, unsigned status,
                             std::string body, unsigned version) {
  auto response = make_response(status, std::move(body));
  response.version(version);
  response.keep_alive(false);
  stream.expires_after(state.options.write_timeout);
  auto [error, bytes] = co_await bhttp::async_write(stream, response, as_result);
  if (error) {
    stream.close();
    co_return;
  }
  co_await linger_close(stream, std::min(state.options.read_timeout, max_linger));
}

// The handler's reply, or a 500 when it throws. The exception text goes to our log
// only: it can hold internals (SQL, paths) that a client must not see.
asio::awaitable<Reply> call_handler(ServerState& state, Request request) {
  std::string method(request.method_string());
  std::string target(request.target().substr(0, request.target().find('?')));
  std::string failure;
  try {
    if (state.reply_handler) co_return co_await state.reply_handler(std::move(request));
    co_return Reply{co_await state.handler(std::move(request))};
  } catch (const std::exception& e) {
    failure = e.what();
  } catch (...) {
    failure = "unknown exception";
  }
  log::error("http_handler_failed", {{"method", method}, {"target", target}, {"error", failure}});
  co_return Reply{make_response(500, R"({"error":"internal"})")};
}

// Makes the close that follows send RST instead of FIN: what a peer sees when the
// host at the other end crashed or a middlebox cut the connection.
void reset_on_close(beast::tcp_stream& stream) {
  error_code ignored;
  stream.socket().set_option(asio::socket_base::linger(true, 0), ignored);
}

asio::awaitable<void> serve_connection(std::shared_ptr<ServerState> state,
                                       std::shared_ptr<beast::tcp_stream> stream,
                                       std::uint64_t id) {
  Registration registration{state, id};
  const auto& options = state->options;
  beast::flat_buffer buffer;
  bool first_request = true;
  std::string peer_address;
  if (!options.peer_address_header.empty()) {
    error_code ignored;
    auto endpoint = stream->socket().remote_endpoint(ignored);
    if (!ignored) peer_address = endpoint.address().to_string();
  }
  for (;;) {
    if (state->stopping) break;
    // Between keep-alive requests the client may stay silent for idle_timeout; once its
    // first byte arrives (or from accept, for the first request) the whole request must
    // arrive within read_timeout, which is what ends slow-header attacks.
    if (!first_request && buffer.size() == 0) {
      stream->expires_after(options.idle_timeout);
      auto [error, bytes] = co_await stream->async_read_some(buffer.prepare(4096), as_result);
      if (error) break;  // idle timeout, peer closed, or stop()
      buffer.commit(bytes);
    }
    first_request = false;

    stream->expires_after(options.read_timeout);
    bhttp::request_parser<bhttp::string_body> parser;
    parser.body_limit(options.body_limit);
    auto [error, bytes] = co_await bhttp::async_read_header(*stream, buffer, parser, as_result);
    if (!error && !parser.is_done()) {
      // curl and others wait up to a second for "100 Continue" before a large body;
      // answering it keeps them fast. A too-large body was refused above already.
      auto expect = parser.get()[bhttp::field::expect];
      if (beast::iequals(expect, "100-continue")) {
        bhttp::response<bhttp::empty_body> proceed{bhttp::status::continue_, parser.get().version()};
        auto [write_error, written] = co_await bhttp::async_write(*stream, proceed, as_result);
        error = write_error;
      }
      if (!error) std::tie(error, bytes) = co_await bhttp::async_read(*stream, buffer, parser, as_result);
    }
    if (error) {
      unsigned version = parser.is_header_done() ? parser.get().version() : 11;
      if (error == bhttp::error::body_limit) {
        co_await reject(*state, *stream, 413, R"({"error":"body too large"})", version);
      } else if (error == bhttp::error::header_limit) {
        co_await reject(*state, *stream, 431, R"({"error":"header too large"})", version);
      } else if (is_malformed_request(error)) {
        co_await reject(*state, *stream, 400, R"({"error":"malformed request"})", version);
      }
      // Otherwise the peer closed, reset, timed out or stop() closed us: nobody to answer.
      break;
    }

    state->set_busy(id, true);
    Request request = parser.release();
    if (!options.peer_address_header.empty()) {
      request.erase(options.peer_address_header);
      if (!peer_address.empty()) request.set(options.peer_address_header, peer_address);
    }
    bool keep_alive = request.keep_alive();
    unsigned version = request.version();
    Reply reply = co_await call_handler(*state, std::move(request));
    Response& response = reply.response;
    if (reply.delivery == Delivery::reset) {
      // Nothing written; the close after the loop resets the connection.
      state->set_busy(id, false);
      reset_on_close(*stream);
      break;
    }
    if (reply.delivery == Delivery::reset_mid_body) {
      // The header promises the whole body, the wire carries part of it, and a reset
      // ends the connection mid-body: the peer sees a short read, not a clean close.
      response.version(version);
      response.keep_alive(false);
      response.prepare_payload();
      auto keep = std::min(reply.body_bytes_before_reset, response.body().size());
      stream->expires_after(options.write_timeout);
      bhttp::response_serializer<bhttp::string_body> serializer(response);
      auto [header_error, header_bytes] = co_await bhttp::async_write_header(*stream, serializer, as_result);
      if (!header_error && keep > 0) {
        co_await asio::async_write(*stream, asio::buffer(response.body().data(), keep), as_result);
      }
      state->set_busy(id, false);
      reset_on_close(*stream);
      break;
    }
    response.version(version);
    // A stopping server finishes this response and then closes, telling the client so.
    response.keep_alive(keep_alive && !state->stopping);
    response.prepare_payload();
    stream->expires_after(options.write_timeout);
    auto [write_error, written] = co_await bhttp::async_write(*stream, response, as_result);
    state->set_busy(id, false);
    if (write_error) break;
    if (response.need_eof()) {
      error_code ignored;
      stream->socket().shutdown(tcp::socket::shutdown_send, ignored);
      break;
    }
  }
  stream->close();
}

// A descriptor kept in reserve for when the process runs out (EMFILE/ENFILE): closing
// it lets one more connection in, so that /readyz can still answer while every other
// descriptor is taken. Reopened as soon as one is free again.
struct SpareDescriptor {
  int fd = -1;
  void reopen() {
    if (fd < 0) fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  bool release() {
    if (fd < 0) return false;
    ::close(fd);
    fd = -1;
    return true;
  }
  ~SpareDescriptor() { release(); }
};

bool out_of_descriptors(const error_code& error) {
  return error == asio::error::no_descriptors || error == error_code(ENFILE, boost::system::system_category()) ||
         error == asio::error::no_buffer_space || error == asio::error::no_memory;
}

asio::awaitable<void> accept_loop(std::shared_ptr<ServerState> state) {
  // An accept that fails at once (out of descriptors) backs off, doubling up to a second,
  // and is logged once per interval with how often it failed meanwhile (it was 568 lines
  // in 30 s): the open connections are served all the while.
  constexpr std::chrono::milliseconds first_pause{50}, max_pause{1000};
  constexpr std::chrono::seconds log_interval{10};
  SpareDescriptor spare;
  spare.reopen();
  std::chrono::milliseconds pause_for = first_pause;
  std::size_t failures_unlogged = 0;
  std::size_t failures_total = 0;  // since accept last succeeded
  bool streak_logged = false;      // this run of failures was logged: its end will be too
  std::optional<std::chrono::steady_clock::time_point> last_logged;
  for (;;) {
    spare.reopen();
    auto [error, socket] = co_await state->acceptor.async_accept(as_result);
    if (state->stopping) co_return;
    if (error && out_of_descriptors(error) && spare.release()) {
      // The reserve makes room for exactly this one connection (a /readyz probe, most
      // likely): the pending connection that failed is taken now.
      std::tie(error, socket) = co_await state->acceptor.async_accept(as_result);
      if (state->stopping) co_return;
    }
    if (error) {
      if (error == asio::error::operation_aborted || error == asio::error::bad_descriptor) co_return;
      ++failures_unlogged;
      ++failures_total;
      const auto now = std::chrono::steady_clock::now();
      if (!last_logged || now - *last_logged >= log_interval) {
        log::warning("http_accept_failed", {{"error", error.message()},
                                            {"failures", std::to_string(failures_unlogged)},
                                            {"pause_ms", std::to_string(pause_for.count())}});
        last_logged = now;
        failures_unlogged = 0;
        streak_logged = true;
      }
      asio::steady_timer pause(state->executor, pause_for);
      co_await pause.async_wait(as_result);
      pause_for = std::min(pause_for * 2, max_pause);
      continue;
    }
    pause_for = first_pause;
    // Under exhaustion accept flaps (a descriptor frees, one accept succeeds, the next
    // fails): the interval above still rules, and an end is said only for a run that was.
    if (failures_total > 0 && streak_logged) {
      log::notice("http_accept_recovered", {{"failures", std::to_string(failures_total)}});
      streak_logged = false;
    }
    failures_total = 0;
    ++state->accepted;
    std::uint64_t id = 0;
    auto stream = std::make_shared<beast::tcp_stream>(std::move(socket));
    {
      std::lock_guard lock(state->mutex);
      if (state->connections.size() >= state->options.max_connections) {
        stream->close();
        log::warning("http_connection_refused",
                     {{"reason", "max_connections"},
                      {"max_connections", std::to_string(state->options.max_connections)}});
        continue;
      }
      id = state->next_connection_id++;
      state->connections.emplace(id, ConnectionEntry{stream, false});
    }
    // Detached, but not unowned: the registry lets stop() close the connection, and the
    // coroutine holds State alive until it ends.
    asio::co_spawn(state->executor, serve_connection(state, stream, id),
                   [](std::exception_ptr failure) {
                     if (!failure) return;
                     try {
                       std::rethrow_exception(failure);
                     } catch (const std::exception& e) {
                       log::error("http_connection_failed", {{"error", e.what()}});
                     }
                   });
  }
}

}  // namespace

Server::Server(asio::any_io_executor executor, ServerOptions options, Handler handler)
    : state_(std::make_shared<State>(std::move(executor), options, std::move(handler), nullptr)) {}

Server::Server(asio::any_io_executor executor, ServerOptions options, ReplyHandler handler)
    : state_(std::make_shared<State>(std::move(executor), options, nullptr, std::move(handler))) {}

Server::~Server() {
  // The coroutines may outlive this object (they share State); without a stop they
  // would keep accepting for an owner that is gone.
  stop();
}

tcp::endpoint Server::listen(const std::string& host_port) {
  auto address = parse_host_port(host_port);
  auto fail = [&](const error_code& error) {
    throw std::system_error(error, "cannot listen on " + host_port);
  };
  // Resolving blocks, but listen() runs once at start-up before any traffic.
  tcp::resolver resolver(state_->executor);
  error_code error;
  auto endpoints = resolver.resolve(address.host, address.port,
                                    tcp::resolver::passive | tcp::resolver::numeric_service, error);
  if (error) fail(error);
  // "localhost" may resolve to ::1 and 127.0.0.1: bind the first that works.
  for (const auto& entry : endpoints) {
    error_code attempt;
    auto& acceptor = state_->acceptor;
    if (acceptor.is_open()) acceptor.close(attempt);
    acceptor.open(entry.endpoint().protocol(), attempt);
    if (!attempt) acceptor.set_option(asio::socket_base::reuse_address(true), attempt);
    if (!attempt) acceptor.bind(entry.endpoint(), attempt);
    if (!attempt) acceptor.listen(asio::socket_base::max_listen_connections, attempt);
    if (!attempt) return acceptor.local_endpoint();
    error = attempt;
  }
  if (state_->acceptor.is_open()) state_->acceptor.close();
  fail(error ? error : make_error_code(asio::error::host_not_found));
  return {};  // unreachable: fail throws
}

void Server::start() {
  asio::co_spawn(state_->executor, accept_loop(state_), [](std::exception_ptr failure) {
    if (!failure) return;
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      log::error("http_accept_loop_failed", {{"error", e.what()}});
    }
  });
}

void Server::stop() {
  // On the executor's thread this runs at once; from elsewhere (a destructor on another
  // thread) it is queued, so sockets are only ever touched from the executor.
  asio::dispatch(state_->executor, [state = state_] { state->stop_on_executor(); });
}

std::size_t Server::connection_count() const { return state_->count(); }

std::size_t Server::accepted_total() const { return state_->accepted.load(); }

Response make_response(unsigned status, std::string body, std::string content_type) {
  Response response;
  response.version(11);
  response.result(status);
  if (!content_type.empty()) response.set(bhttp::field::content_type, content_type);
  response.body() = std::move(body);
  response.prepare_payload();
  return response;
}

}  // namespace klingq::http
