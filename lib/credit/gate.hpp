// The credit gate: which claim candidates the account can pay for. Pure. The known
// balance (from the API) minus credits.reserve minus what other claimed-but-unanswered
// submits already reserved is the budget; each job's expected cost comes from the cost
// table. When the next job in line does not fit, cheaper ones behind it may go first,
// unless that job has already waited `starvation` for credit: then the line holds for it.
#pragma once

#include "config/config.hpp"
#include "util/clock.hpp"

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace klingq::credit {

// Expected cost of one job by mode ("standard" | "professional") and duration (5 | 10).
std::int64_t expected_cost(const config::CostTable& table, std::string_view mode, int duration);

struct Candidate {
  std::int64_t cost = 0;
  TimePoint waiting_since;  // when the job became runnable (run_after)
  int batch_budget = -1;    // index into batch_left when the job's batch has a budget
};

struct Choice {
  std::vector<std::size_t> chosen;  // indexes into the candidates, in claim order
  std::int64_t reserved = 0;        // sum of their costs
  bool short_of_credit = false;     // some candidate did not fit the account's credit
  std::vector<int> spent_batches;   // budgets that held a candidate back
};

// budget: credits that may still be committed (nullopt: unlimited, e.g. no gate).
// batch_left: what each budgeted batch may still commit (klingq.batch_budgets); a job
// whose batch cannot pay waits without holding anyone else back.
Choice choose(const std::vector<Candidate>& candidates, std::size_t max_count,
              std::optional<std::int64_t> budget, TimePoint now, Duration starvation,
              std::vector<std::int64_t> batch_left = {});

}  // namespace klingq::credit
