#include "support/http_call.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>

namespace klingq::testing {

HttpReply http_call(const std::string& address, const std::string& method, const std::string& target,
                    const std::string& body, const std::string& extra_headers) {
  return http_call_from("", address, method, target, body, extra_headers);
}

HttpReply http_call_from(const std::string& source, const std::string& address, const std::string& method,
                         const std::string& target, const std::string& body, const std::string& extra_headers) {
  HttpReply reply;
  auto colon = address.rfind(':');
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  peer.sin_port = htons(static_cast<uint16_t>(std::atoi(address.c_str() + colon + 1)));
  inet_pton(AF_INET, address.substr(0, colon).c_str(), &peer.sin_addr);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval deadline{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &deadline, sizeof deadline);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &deadline, sizeof deadline);
  if (!source.empty()) {
    sockaddr_in local{};
    local.sin_family = AF_INET;
    inet_pton(AF_INET, source.c_str(), &local.sin_addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
      close(fd);
      return reply;
    }
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&peer), sizeof peer) != 0) {
    close(fd);
    return reply;
  }
  std::string request = method + " " + target + " HTTP/1.1\r\nHost: " + address +
                        "\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n" + body;
  for (std::size_t sent = 0; sent < request.size();) {
    auto n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) { close(fd); return reply; }
    sent += static_cast<std::size_t>(n);
  }
  std::string response;
  char buffer[16384];
  for (;;) {
    auto n = recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    response.append(buffer, static_cast<std::size_t>(n));
  }
  close(fd);
  auto head_end = response.find("\r\n\r\n");
  if (response.size() < 12 || head_end == std::string::npos) return reply;
  reply.status = std::atoi(response.c_str() + 9);
  reply.headers = response.substr(0, head_end);
  reply.body = response.substr(head_end + 4);
  // Undo chunked transfer encoding if the server used it.
  if (reply.headers.find("chunked") != std::string::npos) {
    std::string plain;
    std::size_t at = 0;
    while (at < reply.body.size()) {
      auto line_end = reply.body.find("\r\n", at);
      if (line_end == std::string::npos) break;
      auto size = std::strtoul(reply.body.substr(at, line_end - at).c_str(), nullptr, 16);
      if (size == 0) break;
      plain += reply.body.substr(line_end + 2, size);
      at = line_end + 2 + size + 2;
    }
    reply.body = plain;
  }
  return reply;
}

}  // namespace klingq::testing
