// A child process for integration tests: klingq-sim, klingqd or the klingq CLI, started
// with arguments and environment, its stdout and stderr captured, killed on destruction.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace klingq::testing {

class Process {
 public:
  Process(std::vector<std::string> argv, std::map<std::string, std::string> env = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Reads stdout until a line contains needle; returns that line, or nullopt when the
  // deadline passes or the process exits first.
  std::optional<std::string> wait_for_line(const std::string& needle,
                                           std::chrono::milliseconds deadline);
  // Everything read from stderr so far (drained without blocking).
  const std::string& stderr_text();
  // All of stdout read so far.
  const std::string& stdout_text() const { return out_; }

  void signal(int signal_number);
  // Waits for exit; returns the exit code (128+signal when killed), or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds deadline);
  bool running();
  int pid() const { return pid_; }

 private:
  void drain(int fd, std::string& into, int timeout_ms);
  int pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::string err_;
  std::size_t scanned_ = 0;
  std::optional<int> exit_code_;
};

// Runs a command to completion, returning exit code and combined output.
struct CommandResult {
  int exit_code;
  std::string out;
  std::string err;
};
CommandResult run(std::vector<std::string> argv, std::map<std::string, std::string> env = {},
                  std::chrono::milliseconds deadline = std::chrono::seconds(60));

// "listening on 127.0.0.1:PORT" → "127.0.0.1:PORT"
std::string address_from_line(const std::string& line);

}  // namespace klingq::testing
