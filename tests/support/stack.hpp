// The whole product on one machine for integration tests: a migrated throwaway
// database, klingq-sim on port 0, and as many klingqd processes as a test starts, each
// with a config written from defaults plus the test's overrides.
#pragma once

#include "support/process.hpp"

#include <boost/json.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace klingq::testing {

inline constexpr const char* sim_api_key = "test-key-for-klingq-sim";
inline constexpr const char* sim_webhook_secret = "test-webhook-secret";

class Stack {
 public:
  // Starts the simulator with these extra arguments (plan, time scale, faults...).
  explicit Stack(std::vector<std::string> sim_arguments);
  ~Stack();

  // Starts klingqd. `overrides` are dotted config keys ("limits.plan" → "free"); values
  // are YAML scalars or flow sequences. Waits for "klingqd ready".
  Process& start_daemon(std::map<std::string, std::string> overrides = {},
                        std::map<std::string, std::string> environment = {});
  // A config file path for those overrides (without starting anything).
  std::string write_config(std::map<std::string, std::string> overrides);
  // Overrides that turn on the webhook receiver on a free port.
  std::map<std::string, std::string> with_webhooks(std::map<std::string, std::string> overrides = {});

  void exec(const std::string& sql);
  long long scalar(const std::string& sql);
  std::string text(const std::string& sql);
  void insert_jobs(int count, const std::string& extra_columns = "", const std::string& extra_values = "");

  boost::json::object sim_stats();
  void sim_config(const boost::json::object& changes);

  // Checks `condition` every 20 ms until it holds or the deadline passes.
  static bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds deadline);

  std::string database;
  std::string sim_address;
  std::unique_ptr<Process> sim;
  std::vector<std::unique_ptr<Process>> daemons;
  std::string dir;
  std::string last_config_path;  // the config file of the last daemon started
};

// A TCP port that was free a moment ago (for listeners whose URL must be known first).
int free_port();

}  // namespace klingq::testing
