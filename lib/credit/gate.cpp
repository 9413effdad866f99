#include "credit/gate.hpp"

#include <algorithm>

namespace klingq::credit {

std::int64_t expected_cost(const config::CostTable& table, std::string_view mode, int duration) {
  const bool professional = mode == "professional";
  if (duration >= 10) return professional ? table.professional_10 : table.standard_10;
  return professional ? table.professional_5 : table.standard_5;
}

Choice choose(const std::vector<Candidate>& candidates, std::size_t max_count,
              std::optional<std::int64_t> budget, TimePoint now, Duration starvation,
              std::vector<std::int64_t> batch_left) {
  Choice choice;
  std::int64_t left = budget.value_or(0);
  for (std::size_t i = 0; i < candidates.size() && choice.chosen.size() < max_count; ++i) {
    const auto& candidate = candidates[i];
    const int b = candidate.batch_budget;
    if (b >= 0 && b < static_cast<int>(batch_left.size()) && candidate.cost > batch_left[b]) {
      if (std::find(choice.spent_batches.begin(), choice.spent_batches.end(), b) == choice.spent_batches.end())
        choice.spent_batches.push_back(b);
      continue;
    }
    if (!budget || candidate.cost <= left) {
      if (b >= 0 && b < static_cast<int>(batch_left.size())) batch_left[b] -= candidate.cost;
      choice.chosen.push_back(i);
      choice.reserved += candidate.cost;
      left -= candidate.cost;
      continue;
    }
    choice.short_of_credit = true;
    // This job cannot be paid for now. If it has waited too long, nothing behind it
    // may overtake it any more: the credit left is kept for it.
    if (now - candidate.waiting_since >= starvation) break;
  }
  return choice;
}

}  // namespace klingq::credit
