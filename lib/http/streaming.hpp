// One GET whose body is too large to hold in memory: connect through a Connector, send
// the request, read the response header, then hand the body to the caller chunk by
// chunk into its own buffer, each read under a stall deadline. It keeps no connection
// for reuse (a fresh one per GET, closed at the end) and decides nothing about what the
// response means: lib/outputs streams videos with it and owns redirects, sizes, files.
//
// Like connect.hpp this header carries no Beast type, so that its users compile without
// Beast's heavy headers; the parser lives in streaming.cpp.
#pragma once

#include "http/connect.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace klingq::http {

struct StreamingRequest {
  Origin origin;
  std::string host_header;  // the Host field: host, plus ":port" when not the default
  std::string target;       // path and query
  // Sent after Host; "Connection: close" is implied (the connection is never reused).
  std::vector<std::pair<std::string, std::string>> headers;
  std::uint64_t body_limit = 0;  // a body (announced or received) beyond this is an error
  // One read_body() (one buffer's worth of body) that takes longer than this fails: a
  // stalled transfer ends well before the deadline.
  std::chrono::milliseconds stall_timeout{60000};
  // Connect, request, header and the whole body: the exchange ends by then.
  std::chrono::steady_clock::time_point deadline;
};

// What failed, and in which step. `error` empty means nothing failed.
struct StreamingError {
  Step step = Step::resolve;
  boost::system::error_code error;
  std::string detail;  // what the code cannot say: the certificate problem, the proxy's answer
  explicit operator bool() const { return static_cast<bool>(error); }
};

// Error kinds a caller tells apart, without knowing Beast's error enums.
bool is_timeout(const boost::system::error_code& error);     // a deadline or the stall deadline passed
bool is_body_limit(const boost::system::error_code& error);  // the body exceeds body_limit

class StreamingGet {
 public:
  explicit StreamingGet(Connector& connector);
  ~StreamingGet();  // closes the connection
  StreamingGet(const StreamingGet&) = delete;
  StreamingGet& operator=(const StreamingGet&) = delete;

  // Connects, sends the GET and reads the response header, before request.deadline.
  // While the connection is open, `interrupt` (may be null) closes it and so aborts
  // whatever this object waits on; it must outlive this object. Call once.
  boost::asio::awaitable<StreamingError> start(StreamingRequest request, Interrupt* interrupt);

  // After a successful start(): the response header.
  unsigned status() const;
  // A header field's value ("" when absent); names are case-insensitive.
  std::string header(std::string_view name) const;
  // Content-Length, when the response announced one (nullopt: chunked or until close).
  std::optional<std::uint64_t> content_length() const;

  // True once the whole body has been read.
  bool body_done() const;

  struct Chunk {
    std::size_t bytes = 0;  // of `buffer` filled, also when the read then failed
    StreamingError error;   // step read_body
  };
  // Reads the next part of the body into `buffer` (fills it unless the body ends
  // first), before min(deadline, now + stall_timeout).
  boost::asio::awaitable<Chunk> read_body(std::span<char> buffer);

  // Closes the connection now (e.g. before slow work on what was read); idempotent.
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace klingq::http
