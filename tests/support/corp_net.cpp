// The loopback proxy, the TLS front and the test CA of corp_net.hpp. Blocking sockets,
// a thread per connection, poll() to relay both ways; every read has a timeout
// (SO_RCVTIMEO) so that no thread outlives a test by much even if a peer goes quiet.
#include "support/corp_net.hpp"

#include "http/connect.hpp"
#include "support/process.hpp"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cctype>
#include <cstring>
#include <functional>
#include <stdexcept>

namespace klingq::testing {

namespace {

constexpr int io_timeout_seconds = 20;
constexpr std::size_t max_head = 64 * 1024;

void set_timeouts(int fd) {
  timeval timeout{io_timeout_seconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
}

bool send_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    auto sent = ::send(fd, data, size, MSG_NOSIGNAL);
    if (sent <= 0) return false;
    data += sent;
    size -= static_cast<std::size_t>(sent);
  }
  return true;
}

bool send_all(int fd, const std::string& text) { return send_all(fd, text.data(), text.size()); }

// Reads until the end of an HTTP head ("\r\n\r\n"); what came after it stays in `rest`.
bool read_head(int fd, std::string& head, std::string& rest) {
  std::string buffer;
  char chunk[4096];
  while (buffer.size() < max_head) {
    auto end = buffer.find("\r\n\r\n");
    if (end != std::string::npos) {
      head = buffer.substr(0, end + 4);
      rest = buffer.substr(end + 4);
      return true;
    }
    auto got = ::recv(fd, chunk, sizeof chunk, 0);
    if (got <= 0) return false;
    buffer.append(chunk, static_cast<std::size_t>(got));
  }
  return false;
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

// A header field's value in a head ("" when absent); the name compares case-blind.
std::string field(const std::string& head, const std::string& name) {
  auto lowered = lower(head);
  auto at = lowered.find("\r\n" + lower(name) + ":");
  if (at == std::string::npos) return {};
  auto start = at + 2 + name.size() + 1;
  auto end = head.find("\r\n", start);
  auto value = head.substr(start, end - start);
  value.erase(0, value.find_first_not_of(' '));
  return value;
}

int dial(const std::string& host, const std::string& port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) return -1;
  int fd = -1;
  for (auto* at = found; at; at = at->ai_next) {
    fd = ::socket(at->ai_family, at->ai_socktype | SOCK_CLOEXEC, at->ai_protocol);
    if (fd < 0) continue;
    set_timeouts(fd);
    if (::connect(fd, at->ai_addr, at->ai_addrlen) == 0) break;
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(found);
  return fd;
}

// "host:port" or "[v6]:port".
bool split_authority(const std::string& authority, std::string& host, std::string& port) {
  auto colon = authority.rfind(':');
  if (colon == std::string::npos) return false;
  host = authority.substr(0, colon);
  port = authority.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return !host.empty() && !port.empty();
}

// Copies bytes both ways until either side closes or goes quiet past the timeout.
void relay(int a, int b) {
  char buffer[16384];
  for (;;) {
    pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    int ready = ::poll(fds, 2, io_timeout_seconds * 1000);
    if (ready <= 0) return;
    for (int i = 0; i < 2; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      int from = i == 0 ? a : b;
      int to = i == 0 ? b : a;
      auto got = ::recv(from, buffer, sizeof buffer, 0);
      if (got <= 0) return;
      if (!send_all(to, buffer, static_cast<std::size_t>(got))) return;
    }
  }
}

}  // namespace

// ---- the CA -----------------------------------------------------------------------------

TestCa TestCa::make(const std::string& dir, const std::string& ca_name) {
  TestCa ca;
  std::string stem = dir + "/" + std::to_string(std::hash<std::string>{}(ca_name) % 100000);
  ca.ca_file = stem + "-ca.pem";
  ca.cert_file = stem + "-server.pem";
  ca.key_file = stem + "-server.key";
  const auto ca_key = stem + "-ca.key";
  const auto csr = stem + "-server.csr";
  const auto extensions = stem + "-server.ext";
  auto openssl = [](std::vector<std::string> args) {
    args.insert(args.begin(), "/usr/bin/openssl");
    auto result = run(args);
    REQUIRE_MESSAGE(result.exit_code == 0, "openssl " << args[1] << " failed: " << result.err);
  };
  // EC keys: fast to make, and what a modern private CA issues.
  openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", ca_key,
           "-out", ca.ca_file, "-days", "2", "-subj", "/CN=" + ca_name, "-addext",
           "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"});
  openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", ca.key_file,
           "-out", csr, "-subj", "/CN=127.0.0.1"});
  {
    FILE* file = std::fopen(extensions.c_str(), "w");
    REQUIRE(file);
    std::fputs("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
               "extendedKeyUsage=serverAuth\n", file);
    std::fclose(file);
  }
  openssl({"x509", "-req", "-in", csr, "-CA", ca.ca_file, "-CAkey", ca_key, "-CAcreateserial", "-out", ca.cert_file,
           "-days", "2", "-extfile", extensions});
  return ca;
}

// ---- the loopback server skeleton ---------------------------------------------------------

LoopbackServer::LoopbackServer() {
  // SSL_write to a peer that hung up would raise SIGPIPE and end the test process.
  std::signal(SIGPIPE, SIG_IGN);
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(listen_fd_, 64) != 0) {
    throw std::runtime_error(std::string("loopback server: ") + std::strerror(errno));
  }
  socklen_t length = sizeof address;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
  port_ = ntohs(address.sin_port);
}

LoopbackServer::~LoopbackServer() = default;

void LoopbackServer::start() {
  acceptor_ = std::thread([this] {
    for (;;) {
      int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) {
        if (stopping_) return;
        continue;
      }
      set_timeouts(client);
      std::lock_guard lock(mutex_);
      if (stopping_) {
        ::close(client);
        return;
      }
      open_fds_.push_back(client);
      workers_.emplace_back([this, client] {
        serve(client);
        untrack(client);
        ::close(client);
      });
    }
  });
}

void LoopbackServer::track(int fd) {
  std::lock_guard lock(mutex_);
  open_fds_.push_back(fd);
}

void LoopbackServer::untrack(int fd) {
  std::lock_guard lock(mutex_);
  std::erase(open_fds_, fd);
}

void LoopbackServer::stop() {
  stopping_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  ::close(listen_fd_);
  std::vector<std::thread> workers;
  {
    std::lock_guard lock(mutex_);
    // Shutting a socket down wakes the thread blocked on it; the thread closes it.
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    workers.swap(workers_);
  }
  for (auto& worker : workers) worker.join();
}

// ---- the forward proxy ----------------------------------------------------------------------

ForwardProxy::ForwardProxy(std::string credentials) {
  if (!credentials.empty()) expected_authorization_ = http::basic_authorization(credentials);
  start();
}

ForwardProxy::~ForwardProxy() { stop(); }

std::string ForwardProxy::url() const { return "http://127.0.0.1:" + std::to_string(port()); }

std::vector<std::string> ForwardProxy::targets() {
  std::lock_guard lock(seen_mutex_);
  return targets_;
}

std::vector<std::string> ForwardProxy::authorizations() {
  std::lock_guard lock(seen_mutex_);
  return authorizations_;
}

void ForwardProxy::serve(int client) {
  std::string head, rest;
  if (!read_head(client, head, rest)) return;
  auto line_end = head.find("\r\n");
  auto request_line = head.substr(0, line_end);
  auto first_space = request_line.find(' ');
  auto second_space = request_line.find(' ', first_space + 1);
  if (first_space == std::string::npos || second_space == std::string::npos) return;
  auto method = request_line.substr(0, first_space);
  auto target = request_line.substr(first_space + 1, second_space - first_space - 1);
  auto authorization = field(head, "Proxy-Authorization");
  {
    std::lock_guard lock(seen_mutex_);
    targets_.push_back(method + " " + target);
    authorizations_.push_back(authorization);
  }
  if (!expected_authorization_.empty() && authorization != expected_authorization_) {
    ++refused_;
    send_all(client,
             "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"klingq test\"\r\n"
             "Content-Type: text/html\r\nContent-Length: 20\r\nConnection: close\r\n\r\n<h1>who are you</h1>");
    return;
  }
  if (method == "CONNECT") {
    std::string host, port;
    if (!split_authority(target, host, port)) return;
    int upstream = dial(host, port);
    if (upstream < 0) {
      send_all(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      return;
    }
    track(upstream);
    ++tunnels_;
    if (send_all(client, "HTTP/1.1 200 Connection established\r\n\r\n") &&
        (rest.empty() || send_all(upstream, rest))) {
      relay(client, upstream);
    }
    untrack(upstream);
    ::close(upstream);
    return;
  }
  // Absolute form: http://host[:port]/path. One request per connection: the request
  // goes on with "Connection: close", so the origin's answer ends the exchange.
  if (target.rfind("http://", 0) != 0) {
    send_all(client, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return;
  }
  auto path_start = target.find('/', 7);
  auto authority = target.substr(7, path_start == std::string::npos ? std::string::npos : path_start - 7);
  auto path = path_start == std::string::npos ? std::string("/") : target.substr(path_start);
  std::string host, port = "80";
  if (authority.find(':') != std::string::npos) {
    if (!split_authority(authority, host, port)) return;
  } else {
    host = authority;
  }
  int upstream = dial(host, port);
  if (upstream < 0) {
    send_all(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return;
  }
  track(upstream);
  ++forwarded_;
  // The head as the origin sees it: origin-form target, no proxy fields, no keep-alive.
  std::string forwarded = method + " " + path + request_line.substr(second_space) + "\r\n";
  std::size_t at = line_end + 2;
  while (at < head.size() - 2) {
    auto end = head.find("\r\n", at);
    auto line = head.substr(at, end - at);
    at = end + 2;
    auto name = lower(line.substr(0, line.find(':')));
    if (name == "proxy-authorization" || name == "proxy-connection" || name == "connection") continue;
    forwarded += line + "\r\n";
  }
  forwarded += "Connection: close\r\n\r\n";
  if (send_all(upstream, forwarded) && (rest.empty() || send_all(upstream, rest))) relay(client, upstream);
  untrack(upstream);
  ::close(upstream);
}

// ---- the TLS front --------------------------------------------------------------------------

struct TlsFront::Context {
  SSL_CTX* ctx = nullptr;
  ~Context() {
    if (ctx) SSL_CTX_free(ctx);
  }
};

TlsFront::TlsFront(const TestCa& ca, std::string backend) : context_(std::make_unique<Context>()) {
  if (!split_authority(backend, backend_host_, backend_port_)) throw std::invalid_argument("backend: " + backend);
  context_->ctx = SSL_CTX_new(TLS_server_method());
  if (!context_->ctx || SSL_CTX_use_certificate_chain_file(context_->ctx, ca.cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(context_->ctx, ca.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    throw std::runtime_error("TLS front: cannot load the certificate");
  }
  start();
}

TlsFront::~TlsFront() { stop(); }

std::string TlsFront::url() const { return "https://127.0.0.1:" + std::to_string(port()); }

void TlsFront::serve(int client) {
  SSL* ssl = SSL_new(context_->ctx);
  SSL_set_fd(ssl, client);
  if (SSL_accept(ssl) != 1) {
    ++failed_;
    SSL_free(ssl);
    return;
  }
  ++handshakes_;
  int upstream = dial(backend_host_, backend_port_);
  if (upstream >= 0) {
    track(upstream);
    char buffer[16384];
    bool open = true;
    while (open) {
      // Records OpenSSL already decrypted are not visible to poll(): drain them first.
      if (SSL_pending(ssl) == 0) {
        pollfd fds[2] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}};
        if (::poll(fds, 2, io_timeout_seconds * 1000) <= 0) break;
        if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
          auto got = ::recv(upstream, buffer, sizeof buffer, 0);
          if (got <= 0 || SSL_write(ssl, buffer, static_cast<int>(got)) <= 0) break;
        }
        if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      }
      int got = SSL_read(ssl, buffer, sizeof buffer);
      if (got <= 0) {
        open = SSL_get_error(ssl, got) == SSL_ERROR_WANT_READ;
        continue;
      }
      open = send_all(upstream, buffer, static_cast<std::size_t>(got));
    }
    untrack(upstream);
    ::close(upstream);
  }
  SSL_shutdown(ssl);
  SSL_free(ssl);
}

}  // namespace klingq::testing
