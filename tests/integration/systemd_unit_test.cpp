// systemd/klingqd.service as systemd itself judges it: `systemd-analyze security
// --offline=true` must rate it 2.0 or lower and `systemd-analyze verify` must have
// nothing to say. Both run on a copy in a temp dir whose ExecStart points at the
// klingqd just built (verify refuses a missing binary); every other line is unchanged.
//
// systemd-analyze missing is a failure, not a skip: a green run must mean the unit was
// checked. scripts/common.sh installs the `systemd` package that provides it.
#include "support/process.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>

namespace fs = std::filesystem;
using klingq::testing::run;

namespace {

const fs::path unit_source = fs::path(KLINGQ_SOURCE_DIR) / "systemd" / "klingqd.service";
const std::string installed_exec_start = "ExecStart=/usr/bin/klingqd ";

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in, "cannot read ", path.string());
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The absolute path of a program on $PATH, or nullopt.
std::optional<std::string> find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream directories(path ? path : "/usr/bin:/bin");
  for (std::string directory; std::getline(directories, directory, ':');) {
    if (directory.empty()) continue;
    auto candidate = fs::path(directory) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return std::nullopt;
}

std::string systemd_analyze() {
  auto program = find_program("systemd-analyze");
  REQUIRE_MESSAGE(program.has_value(),
                  "systemd-analyze is not installed, so klingqd.service cannot be checked: "
                  "install the 'systemd' package (scripts/common.sh does)");
  return *program;
}

// A temp dir holding klingqd.service with ExecStart rewritten to the built binary.
struct UnitCopy {
  fs::path dir;
  fs::path unit;
  UnitCopy() {
    std::string pattern = (fs::temp_directory_path() / "klingq-unit-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    dir = pattern;
    // The unit name comes from the file name, so the copy keeps it.
    unit = dir / "klingqd.service";
    auto text = read_file(unit_source);
    auto at = text.find("\n" + installed_exec_start);
    REQUIRE_MESSAGE(at != std::string::npos, "klingqd.service has no ", installed_exec_start);
    text.replace(at + 1, installed_exec_start.size(),
                 "ExecStart=" + std::string(KLINGQD_BINARY) + " ");
    std::ofstream(unit) << text;
    REQUIRE(fs::exists(unit));
  }
  ~UnitCopy() { fs::remove_all(dir); }
};

// Plain output: no colours or pager whatever the environment says.
const std::map<std::string, std::string> quiet_env{
    {"SYSTEMD_COLORS", "0"}, {"SYSTEMD_PAGER", ""}, {"SYSTEMD_LOG_COLOR", "0"}};

}  // namespace

TEST_CASE("systemd unit: systemd-analyze security rates klingqd.service 2.0 or lower") {
  auto analyze = systemd_analyze();
  UnitCopy copy;
  auto result = run({analyze, "security", "--offline=true", copy.unit.string()}, quiet_env);
  INFO("systemd-analyze security output:\n", result.out, result.err);
  REQUIRE(result.exit_code == 0);
  // "→ Overall exposure level for klingqd.service: 1.1 OK 🙂"
  std::smatch match;
  std::regex overall(R"(Overall exposure level for klingqd\.service: ([0-9]+\.[0-9]+))");
  REQUIRE_MESSAGE(std::regex_search(result.out, match, overall),
                  "no 'Overall exposure level' line in the output");
  double exposure = std::stod(match[1].str());
  MESSAGE("klingqd.service exposure level: ", match[1].str());
  CHECK(exposure <= 2.0);
}

TEST_CASE("systemd unit: systemd-analyze verify has nothing to report") {
  auto analyze = systemd_analyze();
  UnitCopy copy;
  auto result = run({analyze, "verify", copy.unit.string()}, quiet_env);
  INFO("systemd-analyze verify output:\n", result.out, result.err);
  CHECK(result.exit_code == 0);
  CHECK(result.out.empty());
  CHECK(result.err.empty());
}

TEST_CASE("systemd unit: the settings the daemon relies on are present") {
  auto text = read_file(unit_source);
  auto has = [&](const std::string& line) {
    return text.find("\n" + line + "\n") != std::string::npos;
  };
  // sd_notify: READY/STOPPING/STATUS from the main process, watchdog pings.
  CHECK(has("Type=notify"));
  CHECK(has("NotifyAccess=main"));
  CHECK(has("WatchdogSec=30s"));
  CHECK(has("Restart=on-failure"));
  CHECK(has("KillSignal=SIGTERM"));
  CHECK(has("ExecReload=/bin/kill -HUP $MAINPID"));
  // config::load_api_key reads $CREDENTIALS_DIRECTORY/api-key.
  CHECK(has("LoadCredential=api-key:/etc/klingq/api-key"));
  CHECK(has("DynamicUser=yes"));
  CHECK(has("ExecStart=/usr/bin/klingqd --config /etc/klingq/klingq.yaml"));
  // A bad config exits 2 (daemon/klingqd.cpp): restarting would only loop.
  CHECK(has("RestartPreventExitStatus=2"));
}
