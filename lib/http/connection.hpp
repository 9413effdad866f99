// An open outgoing connection, plain or TLS, as Connector::connect (connect.hpp) hands
// it out: the Beast stream types and the read buffer that goes with them. Internal to
// lib/http: only its .cpp files include this (it pulls in Beast's stream headers, which
// cost every translation unit that includes them; see TOOLCHAIN.md).
#pragma once

#include "http/connect.hpp"

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/system/error_code.hpp>

#include <memory>
#include <string>

namespace klingq::http {

// One open connection, plain or TLS (exactly one of the two is set). The read buffer
// belongs to the connection: whatever the server sent past a response stays with that
// connection's stream.
struct Connection {
  std::unique_ptr<boost::beast::tcp_stream> plain;
  std::unique_ptr<boost::beast::ssl_stream<boost::beast::tcp_stream>> tls;
  boost::beast::flat_buffer buffer;

  boost::beast::tcp_stream& lowest() { return tls ? boost::beast::get_lowest_layer(*tls) : *plain; }

  // Calls `function` with the stream to read and write (a coroutine returning an
  // awaitable): one code path for both kinds of connection.
  template <class Function>
  auto with_stream(Function&& function) {
    return tls ? function(*tls) : function(*plain);
  }
};

struct Connected {
  // Empty on success. A resolve past the deadline is boost::beast::error::timeout, like
  // a connect or handshake past it.
  boost::system::error_code error;
  Step failed_step = Step::resolve;  // when error is set: resolve, connect or tls
  // When error is set, what the error_code cannot say: the certificate problem
  // (X509_verify_cert_error_string, the depth and subject), or the proxy's answer.
  std::string detail;
  std::unique_ptr<Connection> connection;  // when error is empty
};

}  // namespace klingq::http
