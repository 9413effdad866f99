// klingq: the operator CLI. Everything lives in lib/cli; this only hands over argv.
#include "cli/cli.hpp"

#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  std::vector<std::string> arguments(argv + 1, argv + argc);
  return klingq::cli::run(arguments, std::cout, std::cerr,
                          klingq::cli::Terminal{::isatty(STDERR_FILENO) == 1});
}
