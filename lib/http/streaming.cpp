// The streaming GET of streaming.hpp. The body goes through a response_parser with a
// buffer_body pointed at the caller's buffer for each read, so memory per exchange is
// the caller's buffer plus the connection's read buffer, whatever the body's size.
#include "http/streaming.hpp"

#include "http/connection.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>

namespace klingq::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto as_result = asio::as_tuple(asio::use_awaitable);

// Response headers beyond this are refused (CDNs send long ones, but not this long).
constexpr std::uint32_t response_header_limit = 64 * 1024;

}  // namespace

bool is_timeout(const error_code& error) { return error == beast::error::timeout; }

bool is_body_limit(const error_code& error) { return error == bhttp::error::body_limit; }

struct StreamingGet::Impl {
  explicit Impl(Connector& connector_in) : connector(connector_in) {}
  ~Impl() {
    close();
    // The hook points at this connection: it must not outlive it.
    if (interrupt) interrupt->disarm();
  }

  void close() {
    if (connection) connection->lowest().close();
  }

  Connector& connector;
  Interrupt* interrupt = nullptr;
  Clock::time_point deadline;
  std::chrono::milliseconds stall_timeout{0};
  std::unique_ptr<Connection> connection;
  bhttp::response_parser<bhttp::buffer_body> parser;
};

StreamingGet::StreamingGet(Connector& connector) : impl_(std::make_unique<Impl>(connector)) {}

StreamingGet::~StreamingGet() = default;

asio::awaitable<StreamingError> StreamingGet::start(StreamingRequest request, Interrupt* interrupt) {
  auto& impl = *impl_;
  impl.deadline = request.deadline;
  impl.stall_timeout = request.stall_timeout;
  auto connected = co_await impl.connector.connect(request.origin, request.deadline, interrupt);
  if (connected.error) co_return StreamingError{connected.failed_step, connected.error, std::move(connected.detail)};
  impl.connection = std::move(connected.connection);
  // From here until this object goes, the interrupt closes our connection, which ends
  // whatever read or write is waiting on it.
  impl.interrupt = interrupt;
  if (interrupt) interrupt->arm([connection = impl.connection.get()] { connection->lowest().close(); });

  // Plain http through a proxy: the request in absolute form, with our credentials
  // for the proxy (https went through a tunnel that connect() opened).
  const Proxy* proxy = request.origin.tls ? nullptr : proxy_for(impl.connector.options(), request.origin);
  auto target = proxy ? "http://" + request.host_header + request.target : request.target;
  bhttp::request<bhttp::empty_body> get{bhttp::verb::get, target, 11};
  get.set(bhttp::field::host, request.host_header);
  if (proxy && !proxy->authorization.empty()) get.set(bhttp::field::proxy_authorization, proxy->authorization);
  for (const auto& [name, value] : request.headers) get.set(name, value);
  get.keep_alive(false);
  impl.parser.header_limit(response_header_limit);
  impl.parser.body_limit(request.body_limit);

  auto& connection = *impl.connection;
  connection.lowest().expires_at(request.deadline);
  co_return co_await connection.with_stream([&](auto& stream) -> asio::awaitable<StreamingError> {
    auto [write_error, written] = co_await bhttp::async_write(stream, get, as_result);
    if (write_error) co_return StreamingError{Step::send, write_error, {}};
    auto [header_error, header_bytes] =
        co_await bhttp::async_read_header(stream, connection.buffer, impl.parser, as_result);
    if (header_error) co_return StreamingError{Step::read_header, header_error, {}};
    co_return StreamingError{Step::read_header, {}, {}};
  });
}

unsigned StreamingGet::status() const { return impl_->parser.get().result_int(); }

std::string StreamingGet::header(std::string_view name) const {
  auto value = impl_->parser.get()[beast::string_view(name.data(), name.size())];
  return std::string(value.data(), value.size());
}

std::optional<std::uint64_t> StreamingGet::content_length() const {
  // Beast answers with boost::optional; callers take std::optional.
  if (auto announced = impl_->parser.content_length()) return *announced;
  return std::nullopt;
}

bool StreamingGet::body_done() const { return impl_->parser.is_done(); }

asio::awaitable<StreamingGet::Chunk> StreamingGet::read_body(std::span<char> buffer) {
  auto& impl = *impl_;
  auto& body = impl.parser.get().body();
  body.data = buffer.data();
  body.size = buffer.size();
  auto& connection = *impl.connection;
  connection.lowest().expires_at(std::min(impl.deadline, Clock::now() + impl.stall_timeout));
  auto read_error = co_await connection.with_stream([&](auto& stream) -> asio::awaitable<error_code> {
    auto [error, read_bytes] = co_await bhttp::async_read(stream, connection.buffer, impl.parser, as_result);
    co_return error;
  });
  // need_buffer only says the caller's buffer is full: the next call goes on.
  if (read_error == bhttp::error::need_buffer) read_error = {};
  Chunk out;
  out.bytes = buffer.size() - impl.parser.get().body().size;
  out.error = StreamingError{Step::read_body, read_error, {}};
  co_return out;
}

void StreamingGet::close() { impl_->close(); }

}  // namespace klingq::http
