// The configured price table as statement parameters: klingq.expected_cost(mode,
// duration, standard_5, standard_10, professional_5, professional_10) (schema 010)
// prices rows in SQL with the same numbers the credit gate uses in C++.
#pragma once

#include <cstdint>

namespace klingq::db {

struct Prices {
  std::int64_t standard_5 = 0;
  std::int64_t standard_10 = 0;
  std::int64_t professional_5 = 0;
  std::int64_t professional_10 = 0;
};

}  // namespace klingq::db
