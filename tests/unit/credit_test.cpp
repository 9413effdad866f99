#include "credit/gate.hpp"

#include <doctest/doctest.h>

using namespace klingq;
using namespace klingq::credit;
using namespace std::chrono_literals;

TEST_CASE("expected cost follows the cost table") {
  config::CostTable table;
  CHECK(expected_cost(table, "standard", 5) == 100);
  CHECK(expected_cost(table, "standard", 10) == 200);
  CHECK(expected_cost(table, "professional", 5) == 300);
  CHECK(expected_cost(table, "professional", 10) == 500);
}

TEST_CASE("the gate never commits more than the budget") {
  const TimePoint now = from_epoch_ms(1795608000000);
  std::vector<Candidate> line = {{500, now}, {100, now}, {100, now}, {300, now}};
  SUBCASE("unlimited budget takes all up to the count") {
    auto c = choose(line, 3, std::nullopt, now, 600s);
    CHECK(c.chosen == std::vector<std::size_t>{0, 1, 2});
  }
  SUBCASE("cheaper jobs may pass one that does not fit") {
    auto c = choose(line, 10, 250, now, 600s);
    CHECK(c.chosen == std::vector<std::size_t>{1, 2});
    CHECK(c.reserved == 200);
    CHECK(c.short_of_credit);
  }
  SUBCASE("but not once it has starved long enough") {
    std::vector<Candidate> starving = {{500, now - 601s}, {100, now}, {100, now}};
    auto c = choose(starving, 10, 250, now, 600s);
    CHECK(c.chosen.empty());
    CHECK(c.short_of_credit);
  }
  SUBCASE("zero budget takes nothing") {
    CHECK(choose(line, 10, 0, now, 600s).chosen.empty());
  }
  SUBCASE("exact fit") {
    auto c = choose(line, 10, 700, now, 600s);
    CHECK(c.chosen == std::vector<std::size_t>{0, 1, 2});
    CHECK(c.reserved == 700);
  }
}

TEST_CASE("a batch over its budget waits without holding others back") {
  const TimePoint now = from_epoch_ms(1795608000000);
  std::vector<Candidate> line = {{100, now, 0}, {100, now, 0}, {100, now, -1}, {100, now, 0}};
  auto c = choose(line, 10, 1000, now, std::chrono::seconds(600), {150});
  CHECK(c.chosen == std::vector<std::size_t>{0, 2});
  CHECK(c.spent_batches == std::vector<int>{0});
  CHECK(!c.short_of_credit);
}
