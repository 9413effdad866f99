// The klingq operator CLI as a library: daemon/klingq.cpp only forwards argv here, so
// the commands can be read (and tested) without a main.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace klingq::cli {

struct Terminal {
  bool stderr_is_tty = false;  // progress on long loads by default only then
};

// Runs one command line (argv without the program name); returns the exit code
// (see ExitCode in cli/args.hpp).
int run(const std::vector<std::string>& arguments, std::ostream& out, std::ostream& err,
        Terminal terminal);

}  // namespace klingq::cli
