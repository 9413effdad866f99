// The provider's published tables as the simulator enforces them: the plans and their
// limits, and the credit price of a video. Written from ../shared/API.md and the seed
// page (shared/seed/000_*.txt, "速率限制" and "积分"), not taken from klingq's config:
// klingq's tables are its assumptions about the provider, these are the provider's
// truth in the test world, and a test only means something if the two are written
// separately.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace klingq::sim {

// The plans of API.md's "Rate limits" table.
enum class Plan { free, starter, pro, enterprise };

// One plan's limits; 0 means unlimited (the seed's "custom"/"unlimited" for enterprise:
// a custom contract has no published number, so the simulator enforces none).
struct PlanLimits {
  std::int64_t rpm;       // requests per request window
  std::int64_t parallel;  // jobs accepted and not yet terminal
  std::int64_t daily;     // jobs accepted per UTC day
};

// API.md: Free 10/1/100, Starter 30/3/1,000, Pro 60/10/10,000, Enterprise custom.
PlanLimits plan_limits(Plan plan);

// "free", "starter", "pro", "enterprise": the spelling of --plan and /_sim/config.
const char* to_string(Plan plan);
// The plan a name spells, nullopt for any other text (case-sensitive, like the CLI).
std::optional<Plan> parse_plan(std::string_view name);

// Credits per video, API.md's "Credits" table: standard 100-200 and professional 300-500
// for 5-10 s, i.e. the ASSUMED table below. Held in Settings rather than hard-wired, so
// that an Account prices with the table it was given.
struct CostTable {
  std::int64_t standard_5 = 100;
  std::int64_t standard_10 = 200;
  std::int64_t professional_5 = 300;
  std::int64_t professional_10 = 500;
};

}  // namespace klingq::sim
