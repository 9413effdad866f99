// The console's JSON API behind the routes: each function runs its statements on one
// connection (a pool thread) and returns the status and JSON body. No Beast here: the
// request parsing, access rules and HTTP framing are routes.cpp's.
//
//   overview()  limits with headroom and resets, what holds dispatch, credits and
//               runway, live instances, the last hour's events, throughput per minute,
//               batches with counts, spend, budget and ETA. 4 statements, and 5
//               more for slow_figures() when those are due.
//   jobs()      one page of the job list, newest first, keyset by id; a prompt search
//               reads a bounded range of ids per request.
//   job()       one job with its timeline (job_events and operator_events merged).
//   act()       an operator action through lib/operate; refused or unknown: nothing
//               is committed.
#pragma once

#include "db/console.hpp"
#include "db/prices.hpp"
#include "operate/queue_view.hpp"

#include <pqxx/connection>

#include <cstdint>
#include <optional>
#include <string>

namespace klingq::console {

// What the overview's ETA needs from the configuration.
using Settings = operate::EtaSettings;

struct ApiReply {
  int status = 200;
  std::string body;  // JSON
};
ApiReply error_reply(int status, const std::string& message);

// The overview's figures that cost a scan at a million jobs: jobs per (batch, state),
// the budgets, and the last hour of job_events. routes.cpp keeps them for longer than
// the rest (a multiple of what they cost, see routes.hpp).
struct SlowFigures {
  std::vector<db::console::BatchStateCount> counts;
  std::vector<std::pair<std::string, std::int64_t>> budgets;
  std::vector<db::console::EventBucket> events;
  std::int64_t credits_spent_hour = 0;
  std::optional<double> generation_seconds;  // learned p50 (klingq.generation_times)
  std::int64_t read_at = 0;   // epoch ms
  double seconds = 0;         // how long reading them took
};
SlowFigures slow_figures(pqxx::connection& connection, const Settings& settings);  // 5 statements
// The rest is read each time (4 statements: account row, job counts, instances, paused batches).
ApiReply overview(pqxx::connection& connection, const Settings& settings, const SlowFigures& slow);
// With a text (q=) the search is bounded: it reads at most `search_scan_rows` ids below
// `after` (or from the newest), says which it searched ("search": from_id, to_id) and
// gives in next_after where the next request goes on, so no request scans the table.
ApiReply jobs(pqxx::connection& connection, const db::console::JobFilter& filter, std::int64_t search_scan_rows);
ApiReply job(pqxx::connection& connection, std::int64_t id);

struct Action {
  enum Kind { pause, resume, job_retry, job_cancel, batch_retry_failed, batch_cancel, batch_budget, batch_pause, batch_resume };
  Kind kind = pause;
  std::optional<std::int64_t> job_id;
  // A batch action's label; nullopt: the unlabelled batch (batch NULL, the path segment
  // unlabelled_segment). Budgets need a label.
  std::optional<std::string> batch;
  std::optional<std::string> reason;
  std::optional<std::int64_t> budget;  // batch_budget: nullopt removes the cap
};
const char* to_string(Action::Kind kind);

// The path segment of /api/batches/{batch}/... that names the unlabelled batch (the
// jobs without a batch, `klingq batch ... --unlabelled`). Matched before percent-decoding:
// every common encoder (encodeURIComponent, Python's quote, Java's URLEncoder) writes a
// label's ':' as %3A, so a real label ":unlabelled" arrives as "%3Aunlabelled" and is
// read as that label. Should such a label exist, the raw segment is refused (409) rather
// than guessed at.
inline constexpr std::string_view unlabelled_segment = ":unlabelled";
// `who`: the actor recorded ("console:operator#1"). Also returns how many jobs it moved.
ApiReply act(pqxx::connection& connection, const Action& action, const std::string& who, std::int64_t& moved);

}  // namespace klingq::console
