// The klingq CLI as the integration tests run it (KLINGQ_CLI_BINARY against a database
// URL), its result with the JSON it printed, and a scratch directory for input files.
#pragma once

#include "support/process.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace klingq::testing {

struct Cli {
  int code;
  std::string out;
  std::string err;
  // stdout parsed as JSON (the test fails, showing both streams, when it is not).
  boost::json::value json() const {
    boost::json::error_code error;
    auto value = boost::json::parse(out, error);
    INFO("stdout: " << out << "\nstderr: " << err);
    REQUIRE_FALSE(error);
    return value;
  }
};

// `klingq ARGUMENTS...` with KLINGQ_DATABASE_URL=url (and `environment` on top).
inline Cli klingq_cli(const std::string& url, std::vector<std::string> arguments,
                      std::map<std::string, std::string> environment = {}) {
  arguments.insert(arguments.begin(), KLINGQ_CLI_BINARY);
  environment.emplace("KLINGQ_DATABASE_URL", url);
  auto result = run(arguments, std::move(environment));
  return {result.exit_code, result.out, result.err};
}

// A scratch directory for input files, removed with the test.
struct Scratch {
  std::filesystem::path dir;
  Scratch() {
    char pattern[] = "/tmp/klingq-test-scratch-XXXXXX";
    dir = mkdtemp(pattern);
  }
  ~Scratch() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  std::string file(const std::string& name, const std::string& content) const {
    auto path = dir / name;
    std::ofstream(path, std::ios::binary) << content;
    return path.string();
  }
};

}  // namespace klingq::testing
