// When will a batch be done, and what holds it: a pure function of the queue ahead of
// the batch, the account's limits (requests per window, parallel jobs, jobs per day with
// the day's start), the generation time, the balance and the batch's budget, and `now`.
// No I/O: the console, `klingq status` and `klingq estimate` gather the inputs from the
// database and show the same answer.
//
// The model: jobs leave the queue at the slowest of the request rate (rpm / window /
// requests each job costs) and the parallel rate (parallel slots / generation time),
// but never more per provider day than the daily cap leaves; the batch is done one
// generation time after its last job is submitted. The jobs ahead (higher priority, or
// the same priority, which the claim interleaves) are taken first: a conservative
// estimate. Credits or a budget that cannot pay for every job mean no finish time: the
// answer is how many more jobs they pay for.
#pragma once

#include "util/clock.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace klingq::eta {

struct Limits {
  std::int64_t rpm = 0;            // requests per window; 0 = unlimited
  double window_seconds = 60;
  double requests_per_job = 1.0;   // submits and status polls one job spends of the window
  std::int64_t parallel = 0;       // jobs in flight at once; 0 = unlimited
  std::int64_t daily = 0;          // jobs per provider day; 0 = unlimited
  std::int64_t day_used = 0;       // counted against today
  TimePoint day_ends{};            // when the provider's day begins again
};

struct Credits {
  std::optional<std::int64_t> balance;      // unknown: credits are not a limit
  std::int64_t reserve = 0;                 // credits.reserve: never spent
  std::int64_t cost_ahead = 0;              // what the jobs ahead will take
  std::int64_t cost_per_job = 0;            // expected cost of one of the batch's jobs
  std::optional<std::int64_t> budget_left;  // the batch's budget still unspent; none: no cap
};

struct Inputs {
  std::int64_t jobs_ahead = 0;  // queued jobs dispatched before (or among) the batch's
  std::int64_t jobs_left = 0;   // the batch's queued jobs
  std::int64_t in_flight = 0;   // the batch's jobs dispatching or submitted
  Limits limits;
  Credits credits;
  double generation_seconds = 60;  // p50, submit to completion
  bool paused = false;             // klingq pause
  bool batch_paused = false;       // klingq batch pause of this batch
  bool halted = false;             // a 401 halt
  TimePoint now{};
};

enum class Holder {
  done,      // nothing left to do
  none,      // no limit binds: done one generation time from now
  rpm,       // the request window paces it
  parallel,  // the parallel slots pace it
  daily,     // the daily cap: it spills into later days
  credits,   // the balance cannot pay for every job
  budget,    // the batch's budget cannot pay for every job
  paused,
  halted,
};
const char* to_string(Holder holder);

struct Estimate {
  Holder held_by = Holder::none;
  std::optional<TimePoint> done_at;  // none: it will not finish as things stand
  std::optional<std::int64_t> jobs_payable;  // credits/budget: the batch's jobs they pay for
  std::string text;  // "daily cap: done Thursday 14:10 UTC", "credits run out after 4,200 more jobs"
};

Estimate estimate(const Inputs& inputs);

// Every batch of the queue at once, the way the console and `klingq status` ask: the jobs
// ahead of a batch are the queued jobs of the other batches whose top queued priority
// is at least its own (the claim takes higher priorities first and interleaves equal
// ones), and they are paid for first. A paused batch is ahead of nobody.
struct BatchQueue {
  std::int64_t queued = 0;
  std::int64_t in_flight = 0;               // dispatching or submitted
  std::int64_t queued_cost = 0;             // expected cost of the queued jobs
  std::optional<std::int64_t> priority;     // highest queued priority; none: nothing queued
  std::optional<std::int64_t> budget_left;  // none: no budget
  bool paused = false;                      // held by klingq batch pause: takes nothing
};
struct Account {
  Limits limits;
  std::optional<std::int64_t> balance;
  std::int64_t reserve = 0;
  double generation_seconds = 60;
  bool paused = false;
  bool halted = false;
};
std::vector<Estimate> estimate_batches(const Account& account, const std::vector<BatchQueue>& batches, TimePoint now);

// "14:10 UTC" (the same UTC day as now), "Thursday 14:10 UTC" (within 6 days),
// "2026-03-01 14:10 UTC" (later).
std::string when_text(TimePoint at, TimePoint now);
// 4200 -> "4,200"
std::string thousands(std::int64_t n);

}  // namespace klingq::eta
