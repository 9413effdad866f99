// A throwaway PostgreSQL for integration tests: initdb + pg_ctl in a temp dir (as the
// postgres user when running as root), a Unix socket only (no TCP port to collide),
// fsync off, stopped when the process exits even if tests failed.
#pragma once

#include <string>

namespace klingq::testing {

class PgCluster {
 public:
  // The cluster of this test process, started on first use.
  static PgCluster& shared();

  // A new, empty database; returns its connection string.
  std::string fresh_database();
  // A new database with every klingq migration applied.
  std::string migrated_database();

  std::string url(const std::string& database) const;
  const std::string& socket_dir() const { return socket_dir_; }
  int port() const { return port_; }
  void stop();
  // pg_ctl restart (for outage tests); the socket dir and port stay the same.
  void restart();
  void stop_for_outage();
  void start_after_outage();

  ~PgCluster();

 private:
  PgCluster();
  void start();
  std::string dir_;
  std::string socket_dir_;
  std::string data_dir_;
  int port_ = 0;
  bool running_ = false;
  int counter_ = 0;
};

// Runs argv (the first element is the program) and returns its exit status.
int run_command(const std::string& command_line);

}  // namespace klingq::testing
