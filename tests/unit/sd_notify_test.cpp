// sd_notify against a real AF_UNIX datagram socket standing in for systemd: the exact
// bytes of each message, path and abstract addresses, and the no-op outside systemd.
#include "ops/sd_notify.hpp"

#include <doctest/doctest.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <string>

namespace sd = klingq::ops::sd;

namespace {

// Sets (or unsets, with nullopt) an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) previous_ = old;
    if (value) ::setenv(name, value->c_str(), 1);
    else ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (previous_) ::setenv(name_, previous_->c_str(), 1);
    else ::unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> previous_;
};

// A bound AF_UNIX datagram socket playing systemd's notify socket.
class FakeManager {
 public:
  // address: "/path" or "@abstract-name", exactly as $NOTIFY_SOCKET would carry it.
  explicit FakeManager(std::string address) : address_(std::move(address)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un sockaddr{};
    sockaddr.sun_family = AF_UNIX;
    REQUIRE(address_.size() < sizeof(sockaddr.sun_path));
    std::memcpy(sockaddr.sun_path, address_.data(), address_.size());
    bool abstract = address_[0] == '@';
    if (abstract) sockaddr.sun_path[0] = '\0';
    auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size() +
                                         (abstract ? 0 : 1));
    REQUIRE(::bind(fd_, reinterpret_cast<const struct sockaddr*>(&sockaddr), length) == 0);
  }
  ~FakeManager() { ::close(fd_); }
  FakeManager(const FakeManager&) = delete;
  FakeManager& operator=(const FakeManager&) = delete;

  // The next datagram, or nullopt when none arrives within the deadline.
  std::optional<std::string> receive(int deadline_ms = 5000) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, deadline_ms) != 1) return std::nullopt;
    char buffer[4096];
    ssize_t n = ::recv(fd_, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n < 0) return std::nullopt;
    return std::string(buffer, static_cast<std::size_t>(n));
  }
  // True when nothing is queued right now (datagrams to a local socket are queued by
  // the time sendto returns, so no wait is needed).
  bool empty() {
    char byte;
    return ::recv(fd_, &byte, 1, MSG_DONTWAIT | MSG_PEEK) < 0 && errno == EAGAIN;
  }
  const std::string& address() const { return address_; }

 private:
  std::string address_;
  int fd_ = -1;
};

std::string random_suffix() {
  std::random_device device;
  return std::to_string(::getpid()) + "-" + std::to_string(device());
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "klingq-sd-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST_CASE("sd_notify sends each message as one datagram to a path socket") {
  TempDir dir;
  FakeManager manager((dir.path / "notify").string());
  ScopedEnv socket("NOTIFY_SOCKET", manager.address());
  CHECK(sd::under_systemd());

  CHECK(!sd::ready());
  CHECK(manager.receive() == "READY=1");
  CHECK(!sd::stopping());
  CHECK(manager.receive() == "STOPPING=1");
  CHECK(!sd::watchdog());
  CHECK(manager.receive() == "WATCHDOG=1");
  CHECK(!sd::status("queued=12 in_flight=3/5"));
  CHECK(manager.receive() == "STATUS=queued=12 in_flight=3/5");
  CHECK(!sd::notify("READY=1\nSTATUS=up"));
  CHECK(manager.receive() == "READY=1\nSTATUS=up");

  auto reload = manager.receive(0);
  CHECK(!reload);
  CHECK(!sd::reloading());
  reload = manager.receive();
  REQUIRE(reload);
  CHECK(reload->rfind("RELOADING=1\nMONOTONIC_USEC=", 0) == 0);
  CHECK(reload->size() > std::strlen("RELOADING=1\nMONOTONIC_USEC="));
  CHECK(manager.empty());
}

TEST_CASE("sd_notify status text cannot inject other assignments") {
  TempDir dir;
  FakeManager manager((dir.path / "notify").string());
  ScopedEnv socket("NOTIFY_SOCKET", manager.address());
  CHECK(!sd::status("draining\nREADY=1\r\nX"));
  CHECK(manager.receive() == "STATUS=draining READY=1  X");
}

TEST_CASE("sd_notify reaches an abstract socket named with @") {
  FakeManager manager("@klingq-sd-test-" + random_suffix());
  ScopedEnv socket("NOTIFY_SOCKET", manager.address());
  CHECK(!sd::ready());
  CHECK(manager.receive() == "READY=1");
  CHECK(!sd::notify_to(manager.address(), "WATCHDOG=1"));
  CHECK(manager.receive() == "WATCHDOG=1");
}

TEST_CASE("sd_notify is a silent no-op outside systemd") {
  ScopedEnv socket("NOTIFY_SOCKET", std::nullopt);
  CHECK(!sd::under_systemd());
  CHECK(!sd::ready());
  CHECK(!sd::status("anything"));
  CHECK(!sd::watchdog());
  ScopedEnv empty("NOTIFY_SOCKET", "");
  CHECK(!sd::under_systemd());
  CHECK(!sd::stopping());
}

TEST_CASE("sd_notify reports, without throwing, a socket nobody listens on") {
  TempDir dir;
  ScopedEnv socket("NOTIFY_SOCKET", (dir.path / "nobody").string());
  auto error = sd::ready();
  CHECK(error);
  CHECK(error == std::errc::no_such_file_or_directory);
  CHECK(sd::notify_to("relative/path", "READY=1") == std::errc::address_family_not_supported);
  CHECK(sd::notify_to("/" + std::string(200, 'x'), "READY=1") == std::errc::filename_too_long);
}

TEST_CASE("watchdog_interval reads WATCHDOG_USEC and honours WATCHDOG_PID") {
  using std::chrono::microseconds;
  {
    ScopedEnv usec("WATCHDOG_USEC", std::nullopt);
    ScopedEnv pid("WATCHDOG_PID", std::nullopt);
    CHECK(!sd::watchdog_interval());
  }
  {
    ScopedEnv usec("WATCHDOG_USEC", "30000000");
    ScopedEnv pid("WATCHDOG_PID", std::nullopt);
    CHECK(sd::watchdog_interval() == microseconds(30000000));
  }
  {
    ScopedEnv usec("WATCHDOG_USEC", "30000000");
    ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid()));
    CHECK(sd::watchdog_interval() == microseconds(30000000));
  }
  {
    // Inherited from a parent service: not ours to ping.
    ScopedEnv usec("WATCHDOG_USEC", "30000000");
    ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid() + 1));
    CHECK(!sd::watchdog_interval());
  }
  for (const char* bad : {"", "0", "-5", "12s", "abc", "99999999999999999999999"}) {
    ScopedEnv usec("WATCHDOG_USEC", bad);
    ScopedEnv pid("WATCHDOG_PID", std::nullopt);
    CHECK_MESSAGE(!sd::watchdog_interval(), "WATCHDOG_USEC=", bad);
  }
  {
    ScopedEnv usec("WATCHDOG_USEC", "30000000");
    ScopedEnv pid("WATCHDOG_PID", "not-a-pid");
    CHECK(!sd::watchdog_interval());
  }
}
