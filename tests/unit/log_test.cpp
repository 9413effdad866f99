#include "util/log.hpp"

#include <doctest/doctest.h>

using namespace klingq::log;

TEST_CASE("log lines carry the journald priority and quote what needs it") {
  CHECK(format(Level::warning, "rate_limited", {{"window", "rpm"}, {"why", "429 from api"}}, false) ==
        "<4>rate_limited window=rpm why=\"429 from api\"");
  CHECK(format(Level::info, "x", {{"k", "a\nb"}}, false) == "<6>x k=\"a\\nb\"");
  CHECK(format(Level::error, "boom", {{"k", "v"}}, true) ==
        R"({"level":"error","event":"boom","k":"v"})");
  Level level;
  CHECK(parse_level("debug", level));
  CHECK(level == Level::debug);
  CHECK(!parse_level("loud", level));
}
