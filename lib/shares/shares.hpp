// Fair shares of the account between batches (issue 17). Pure: the batches' settings and
// share state and `now` in, which batch takes each free submit out; no I/O.
//
// The scheme is stride scheduling, deficit round-robin's cousin with memory: every batch
// has a `pass`, the virtual time of its next submit. Each free submit goes to the batch of
// the highest priority that can still use one, and among those to the lowest pass; taking
// it adds 1/weight to that batch's pass. A batch of weight 3 therefore takes three submits
// for every one of a weight-1 batch, over any stretch of time and across claims (the
// passes are kept in klingq.batches), whichever limit (requests, parallel slots, the day)
// hands the submits out. `vtime` is the pass of the last batch served, held back to the
// lowest pass of one that waited its turn with room: a batch that was away (new, paused,
// capped, empty) comes back at vtime, not below it, so it gets its share from then on
// without a burst for the time it missed. A batch that cannot take a submit (its
// max_parallel, daily cap, budget, no more rows) is skipped and the others take it.
// Nothing starves: every batch with room gets its weight's share.
#pragma once

#include "util/clock.hpp"

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace klingq::shares {

constexpr std::int64_t unlimited = std::numeric_limits<std::int64_t>::max();

// One batch that has runnable jobs.
struct Batch {
  std::string key;           // "" = the unlabelled jobs
  int priority = 0;          // of its runnable rows considered
  int weight = 1;            // >= 1
  double pass = 0;           // from klingq.batches
  std::int64_t room = unlimited;  // submits it may still take now (see room_of)
};

// What limits a batch on its own, besides the account's limits.
struct Caps {
  std::optional<std::int64_t> max_parallel;
  std::int64_t in_flight = 0;            // its jobs dispatching or submitted
  std::optional<std::int64_t> daily_cap;
  std::int64_t day_count = 0;            // its submits counted for the day `day_key`
  std::optional<std::int64_t> day_key;   // which day day_count belongs to
  std::optional<std::int64_t> budget_left;  // credits it may still commit
  std::int64_t cheapest_cost = 0;        // the lowest price a job of it can have
  std::optional<std::int64_t> available; // runnable rows, when known
};
// The provider day a submit taken at `now` counts for: the end of the limiter's day when
// known, else the next 00:00 UTC (epoch ms). Batches' daily caps count per such day.
std::int64_t day_key(std::optional<TimePoint> day_reset_at, TimePoint now);
// How many submits the caps let the batch take now (unlimited when none binds).
std::int64_t room_of(const Caps& caps, std::int64_t today);
// The batch's day count after it took `taken` submits today.
std::int64_t day_count_after(const Caps& caps, std::int64_t today, std::int64_t taken);

struct Plan {
  std::vector<std::size_t> picks;  // index into the batches for each submit, in order
  std::vector<std::int64_t> count;  // submits per batch (same indexes)
};
// At most this many batches of one priority take submits in one plan at a time (a new one
// starts only as a served one runs out of room). Every batch served costs the claim an
// index descent, row locks and a write of its pass, so a claim of 100 over 1,000 equal
// batches serves 8 of them about 12 each, not 100 of them one each. The passes count
// every submit, so the next claims serve the batches that waited (lowest stored pass
// first) and the shares over time are the same; a batch is about its part of a claim
// ahead or behind at any moment. A claim of up to 8 submits is shared exactly.
constexpr std::size_t max_served = 8;

// Up to `slots` submits: the highest priority first, then the lowest pass (no lower than
// vtime), each pick adding 1/weight; a batch without room is passed over, and one not yet
// picked waits while `served` picked batches of its priority still have room. Ties go to
// the lower index (the caller lists batches in pass, then key order).
Plan plan(const std::vector<Batch>& batches, std::int64_t slots, double vtime, std::size_t served = max_served);

struct Advanced {
  std::vector<double> pass;  // every batch's pass after the submits taken
  double vtime = 0;
};
// The share state after the submits actually taken (a subset of a plan, in its order:
// the credit gate may have held some back): passes only move for what was taken, and
// vtime stops at the lowest pass of a batch of that priority left waiting with room.
Advanced advance(const std::vector<Batch>& batches, const std::vector<std::size_t>& taken, double vtime);

}  // namespace klingq::shares
