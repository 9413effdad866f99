// The provider's plan table: see provider.hpp.
#include "sim/provider.hpp"

namespace klingq::sim {

PlanLimits plan_limits(Plan plan) {
  switch (plan) {
    case Plan::free: return {10, 1, 100};
    case Plan::starter: return {30, 3, 1000};
    case Plan::pro: return {60, 10, 10000};
    case Plan::enterprise: return {0, 0, 0};
  }
  return {10, 1, 100};  // unreachable for a valid enum; the most restrictive plan
}

const char* to_string(Plan plan) {
  switch (plan) {
    case Plan::free: return "free";
    case Plan::starter: return "starter";
    case Plan::pro: return "pro";
    case Plan::enterprise: return "enterprise";
  }
  return "?";
}

std::optional<Plan> parse_plan(std::string_view name) {
  for (auto plan : {Plan::free, Plan::starter, Plan::pro, Plan::enterprise}) {
    if (name == to_string(plan)) return plan;
  }
  return std::nullopt;
}

}  // namespace klingq::sim
