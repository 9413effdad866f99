// Command-line parsing for the klingq CLI: global options (accepted anywhere), one
// command, and that command's options from a table that also drives --help, so the
// help text cannot drift from what is accepted.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace klingq::cli {

// Exit codes, documented in --help and README.md ("The klingq CLI").
enum ExitCode : int {
  exit_ok = 0,
  exit_failed = 1,        // the command failed, or did only part of what was asked
  exit_usage = 2,         // bad command line or config file
  exit_unreachable = 3,   // the database cannot be reached
  exit_refused = 4,       // validation refused a load: nothing was loaded
};

struct OptionSpec {
  std::string_view name;         // "--batch"
  std::string_view value_name;   // "LABEL"; empty for a flag
  std::string_view help;
};

struct CommandSpec {
  std::string_view name;
  std::string_view operands;  // "FILE|-", shown in the synopsis
  std::string_view summary;   // one line, for `klingq --help`
  std::vector<OptionSpec> options;
  std::string_view details;   // paragraphs after the options
};

// Every command, in the order --help lists them.
const std::vector<CommandSpec>& commands();
const CommandSpec* find_command(std::string_view name);

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Arguments {
  std::string command;                       // "" when none was given
  std::map<std::string, std::string> values;  // options with a value, by name
  std::set<std::string> flags;                // flags given
  std::vector<std::string> operands;
  bool help = false;                          // --help / -h
  bool version = false;                       // --version

  bool flag(const std::string& name) const { return flags.count(name) != 0; }
  std::optional<std::string> value(const std::string& name) const;
};

// Parses argv[1..]. Global options: --database URL, --config FILE, --json, --help.
// Throws UsageError for an unknown command or option, or a missing value.
Arguments parse_arguments(const std::vector<std::string>& arguments);

std::string general_help();
std::string command_help(const CommandSpec& command);

}  // namespace klingq::cli
