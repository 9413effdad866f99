#include "support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace klingq::testing {

Process::Process(std::vector<std::string> argv, std::map<std::string, std::string> env) {
  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    for (const auto& [key, value] : env) setenv(key.c_str(), value.c_str(), 1);
    std::vector<char*> args;
    for (auto& arg : argv) args.push_back(arg.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    std::fprintf(stderr, "exec %s failed: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  out_fd_ = out_pipe[0];
  err_fd_ = err_pipe[0];
  fcntl(out_fd_, F_SETFL, O_NONBLOCK);
  fcntl(err_fd_, F_SETFL, O_NONBLOCK);
}

Process::~Process() {
  if (running()) {
    ::kill(pid_, SIGKILL);
    wait(std::chrono::seconds(10));
  }
  if (out_fd_ >= 0) close(out_fd_);
  if (err_fd_ >= 0) close(err_fd_);
}

void Process::drain(int fd, std::string& into, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) <= 0) return;
  char buffer[65536];
  for (bool first = true;; first = false) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n == 0 && first && timeout_ms > 0) {
      // The pipe is closed (the child exited): pace the caller's loop instead of spinning.
      std::this_thread::sleep_for(std::chrono::milliseconds(timeout_ms));
    }
    if (n <= 0) break;
    into.append(buffer, static_cast<std::size_t>(n));
  }
}

std::optional<std::string> Process::wait_for_line(const std::string& needle,
                                                  std::chrono::milliseconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    for (;;) {
      auto end = out_.find('\n', scanned_);
      if (end == std::string::npos) break;
      auto line = out_.substr(scanned_, end - scanned_);
      scanned_ = end + 1;
      if (line.find(needle) != std::string::npos) return line;
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= until) return std::nullopt;
    drain(err_fd_, err_, 0);
    if (!running()) {
      drain(out_fd_, out_, 0);
      if (out_.find('\n', scanned_) == std::string::npos) return std::nullopt;
      continue;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count();
    drain(out_fd_, out_, static_cast<int>(std::min<long long>(left, 50)));
  }
}

const std::string& Process::stderr_text() {
  drain(err_fd_, err_, 0);
  return err_;
}

void Process::signal(int signal_number) {
  if (pid_ > 0 && !exit_code_) ::kill(pid_, signal_number);
}

bool Process::running() {
  if (exit_code_) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
  }
  return true;
}

std::optional<int> Process::wait(std::chrono::milliseconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (running()) {
    if (std::chrono::steady_clock::now() >= until) return std::nullopt;
    // Keep the pipes drained so the child never blocks on a full pipe while exiting.
    drain(out_fd_, out_, 20);
    drain(err_fd_, err_, 0);
  }
  drain(out_fd_, out_, 0);
  drain(err_fd_, err_, 0);
  return exit_code_;
}

CommandResult run(std::vector<std::string> argv, std::map<std::string, std::string> env,
                  std::chrono::milliseconds deadline) {
  Process process(std::move(argv), std::move(env));
  auto code = process.wait(deadline);
  if (!code) {
    process.signal(SIGKILL);
    process.wait(std::chrono::seconds(5));
    return {-1, process.stdout_text(), process.stderr_text()};
  }
  return {*code, process.stdout_text(), process.stderr_text()};
}

std::string address_from_line(const std::string& line) {
  auto at = line.rfind(' ');
  return at == std::string::npos ? line : line.substr(at + 1);
}

}  // namespace klingq::testing
