// sd_notify(3) as one sendto(2). Kept dependency-free on purpose: linking libsystemd for
// a single datagram would add a runtime dependency to a daemon that must also run
// outside systemd.
#include "ops/sd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

namespace klingq::ops::sd {
namespace {

std::string_view environment(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::string_view(value) : std::string_view();
}

// Parses a whole string as a decimal integer; from_chars on an unsigned type refuses a
// sign, so "-1" and "+1" are malformed like any other junk.
std::optional<unsigned long long> parse_unsigned(std::string_view text) {
  unsigned long long value = 0;
  if (text.empty()) return std::nullopt;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::error_code last_error() { return {errno, std::system_category()}; }

// Closes the descriptor on every return path.
struct Descriptor {
  int fd;
  ~Descriptor() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

bool under_systemd() { return !environment("NOTIFY_SOCKET").empty(); }

std::error_code notify_to(std::string_view socket_address, std::string_view state) {
  if (socket_address.empty()) return {};
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  // Abstract sockets ("@name") have a leading NUL and no terminator; their length is
  // the exact name length. Path sockets are NUL-terminated inside sun_path.
  bool abstract = socket_address.front() == '@';
  if (!abstract && socket_address.front() != '/') {
    // systemd 254+ may also hand out "vsock:" addresses; klingqd targets AF_UNIX only.
    return std::make_error_code(std::errc::address_family_not_supported);
  }
  if (socket_address.size() > sizeof(address.sun_path) - (abstract ? 0 : 1)) {
    return std::make_error_code(std::errc::filename_too_long);
  }
  std::memcpy(address.sun_path, socket_address.data(), socket_address.size());
  if (abstract) address.sun_path[0] = '\0';
  auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_address.size() +
                                       (abstract ? 0 : 1));

  Descriptor socket{::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
  if (socket.fd < 0) return last_error();
  // MSG_NOSIGNAL: a vanished manager must not kill us with SIGPIPE. The kernel attaches
  // our credentials (systemd enables SO_PASSCRED), which is how NotifyAccess=main
  // recognises the main process.
  ssize_t sent = ::sendto(socket.fd, state.data(), state.size(), MSG_NOSIGNAL,
                          reinterpret_cast<const sockaddr*>(&address), length);
  if (sent < 0) return last_error();
  if (static_cast<std::size_t>(sent) != state.size()) {
    return std::make_error_code(std::errc::message_size);
  }
  return {};
}

std::error_code notify(std::string_view state) {
  return notify_to(environment("NOTIFY_SOCKET"), state);
}

std::error_code ready() { return notify("READY=1"); }
std::error_code stopping() { return notify("STOPPING=1"); }
std::error_code watchdog() { return notify("WATCHDOG=1"); }

std::error_code reloading() {
  // systemd 253+ (Type=notify-reload) requires MONOTONIC_USEC to match the reload to
  // its request; older versions ignore the field.
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  auto usec = static_cast<long long>(now.tv_sec) * 1000000 + now.tv_nsec / 1000;
  return notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

std::error_code status(std::string_view text) {
  std::string message = "STATUS=";
  message.reserve(message.size() + text.size());
  for (char c : text) message.push_back(c == '\n' || c == '\r' ? ' ' : c);
  return notify(message);
}

std::optional<std::chrono::microseconds> watchdog_interval() {
  auto pid_text = environment("WATCHDOG_PID");
  if (!pid_text.empty()) {
    auto pid = parse_unsigned(pid_text);
    if (!pid || *pid != static_cast<unsigned long long>(::getpid())) return std::nullopt;
  }
  auto usec = parse_unsigned(environment("WATCHDOG_USEC"));
  using Rep = std::chrono::microseconds::rep;
  if (!usec || *usec == 0 || *usec > static_cast<unsigned long long>(std::numeric_limits<Rep>::max())) {
    return std::nullopt;
  }
  return std::chrono::microseconds(static_cast<std::chrono::microseconds::rep>(*usec));
}

}  // namespace klingq::ops::sd
