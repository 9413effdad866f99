// The shared operator actions; see operate.hpp.
#include "operate/operate.hpp"

#include "db/console.hpp"
#include "db/jobs.hpp"
#include "db/operator.hpp"

#include <boost/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <map>
#include <set>

namespace klingq::operate {
namespace {

// "2025-01-31 12:00:00.123+00" (a timestamptz as text in a UTC session) -> ISO 8601.
std::string iso_time(std::string text) {
  if (text.size() > 10 && text[10] == ' ') text[10] = 'T';
  if (text.size() > 3 && text.compare(text.size() - 3, 3, "+00") == 0) text.replace(text.size() - 3, 3, "Z");
  return text;
}

// `unlabelled` marks the unlabelled batch's events: they have batch NULL, as does a
// `klingq retry --failed` of every batch, which this tells apart.
std::string ids_json(const std::vector<std::int64_t>& ids, bool unlabelled = false) {
  boost::json::array a;
  for (auto id : ids) a.push_back(id);
  boost::json::object o{{"ids", a}, {"count", ids.size()}};
  if (unlabelled) o["unlabelled"] = true;
  return boost::json::serialize(o);
}

std::vector<std::int64_t> sorted(std::vector<std::int64_t> ids) {
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

// One row per job acted on, so that each job's page shows who touched it.
void record_per_job(pqxx::transaction_base& tx, const Actor& actor, const std::string& action,
                    const std::vector<std::int64_t>& ids) {
  for (auto id : ids) db::console::record_operator_event(tx, actor.who, action, id, std::nullopt, actor.reason, "{}");
}

}  // namespace

Actor cli_actor(std::optional<std::string> reason) {
  const char* user = std::getenv("USER");
  if (!user || !*user) user = std::getenv("LOGNAME");
  char host[HOST_NAME_MAX + 1] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return Actor{std::string("cli:") + (user && *user ? user : "unknown") + "@" + (host[0] ? host : "localhost"),
               std::move(reason)};
}

Outcome pause(pqxx::transaction_base& tx, const Actor& actor) {
  Outcome out;
  out.halted_reason = db::account_admin::pause(tx, actor.reason);
  db::console::record_operator_event(tx, actor.who, "pause", std::nullopt, std::nullopt, actor.reason, "{}");
  return out;
}

Outcome resume(pqxx::transaction_base& tx, const Actor& actor) {
  Outcome out;
  out.halted_reason = db::account_admin::resume(tx);
  // Wake the dispatchers now rather than at their next safety poll.
  db::jobs::notify(tx, "resume");
  db::console::record_operator_event(tx, actor.who, "resume", std::nullopt, std::nullopt, actor.reason, "{}");
  return out;
}

Outcome cancel_jobs(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids, const Actor& actor) {
  Outcome out;
  out.done = sorted(db::jobs_admin::cancel_by_ids(tx, ids));
  std::set<std::int64_t> done(out.done.begin(), out.done.end());
  std::map<std::int64_t, db::jobs_admin::Current> found;
  for (auto& job : db::jobs_admin::state_by_ids(tx, ids)) found[job.id] = job;
  for (auto id : ids) {
    if (done.count(id)) continue;
    Refusal r;
    r.id = id;
    if (auto it = found.find(id); it == found.end()) {
      r.reason = "no such job";
    } else {
      r.state = it->second.state;
      if (*r.state == "submitted") r.reason = "already accepted and charged by the API";
      else if (*r.state == "dispatching")
        r.reason = "being submitted right now; its lease expires at " + iso_time(it->second.lease_expires_at.value_or(""));
      else r.reason = "already " + *r.state;
    }
    r.message = "job " + std::to_string(id) + " not cancelled: " + r.reason;
    out.refused.push_back(std::move(r));
  }
  record_per_job(tx, actor, "cancel", out.done);
  return out;
}

Outcome cancel_batch(pqxx::transaction_base& tx, const std::optional<std::string>& batch, const Actor& actor) {
  Outcome out;
  out.done = sorted(batch ? db::jobs_admin::cancel_by_batch(tx, *batch) : db::jobs_admin::cancel_unlabelled(tx));
  std::int64_t in_batch = 0;
  for (const auto& [state, count] : batch ? db::jobs_admin::count_batch_by_state(tx, *batch)
                                          : db::jobs_admin::count_unlabelled_by_state(tx)) {
    in_batch += count;
    Refusal r;
    if (state == "submitted") r.reason = "already accepted and charged by the API";
    else if (state == "dispatching") r.reason = "being submitted right now (lease still held)";
    else continue;  // finished jobs need no cancelling
    r.state = state;
    r.count = count;
    r.message = std::to_string(count) + " " + state + " job" + (count == 1 ? "" : "s") + " not cancelled: " + r.reason;
    out.refused.push_back(std::move(r));
  }
  out.empty_batch = in_batch == 0;
  db::console::record_operator_event(tx, actor.who, "batch_cancel", std::nullopt, batch, actor.reason,
                                     ids_json(out.done, !batch));
  return out;
}

Outcome retry_jobs(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids, const Actor& actor) {
  Outcome out;
  out.done = sorted(db::jobs_admin::retry_by_ids(tx, ids));
  std::set<std::int64_t> done(out.done.begin(), out.done.end());
  std::map<std::int64_t, std::string> found;
  for (const auto& job : db::jobs_admin::state_by_ids(tx, ids)) found[job.id] = job.state;
  for (auto id : ids) {
    if (done.count(id)) continue;
    Refusal r;
    r.id = id;
    auto it = found.find(id);
    if (it == found.end()) {
      r.reason = "no such job";
    } else {
      r.state = it->second;
      r.reason = "it is " + it->second + ", only failed or cancelled jobs are retried";
    }
    r.message = "job " + std::to_string(id) + " not retried: " + r.reason;
    out.refused.push_back(std::move(r));
  }
  if (!out.done.empty()) db::jobs::notify(tx, "retry");
  record_per_job(tx, actor, "retry", out.done);
  return out;
}

Outcome retry_selection(pqxx::transaction_base& tx, const std::optional<std::string>& batch, bool failed_only,
                        const Actor& actor) {
  Outcome out;
  out.done = sorted(db::jobs_admin::retry_by_selection(tx, batch, failed_only));
  if (!out.done.empty()) db::jobs::notify(tx, "retry");
  db::console::record_operator_event(tx, actor.who, failed_only ? "retry_failed" : "retry_ended", std::nullopt, batch,
                                     actor.reason, ids_json(out.done));
  return out;
}

Outcome retry_unlabelled(pqxx::transaction_base& tx, bool failed_only, const Actor& actor) {
  Outcome out;
  out.done = sorted(db::jobs_admin::retry_by_selection(tx, std::nullopt, failed_only, true));
  if (!out.done.empty()) db::jobs::notify(tx, "retry");
  db::console::record_operator_event(tx, actor.who, failed_only ? "retry_failed" : "retry_ended", std::nullopt,
                                     std::nullopt, actor.reason, ids_json(out.done, true));
  return out;
}

db::batches::Settings set_batch(pqxx::transaction_base& tx, const std::optional<std::string>& batch,
                                std::optional<int> weight, const db::batches::Change<std::int64_t>& max_parallel,
                                const db::batches::Change<std::int64_t>& daily_cap,
                                const db::batches::Change<std::int64_t>& budget, const Actor& actor) {
  auto now = db::batches::set(tx, batch, weight, max_parallel, daily_cap, budget);
  db::jobs::notify(tx, "batch");  // a larger share or a lifted cap may let jobs go now
  auto change = [](const db::batches::Change<std::int64_t>& c) -> boost::json::value {
    if (!c) return "kept";
    if (!*c) return nullptr;
    return **c;
  };
  boost::json::object detail{{"weight", weight ? boost::json::value(*weight) : boost::json::value("kept")},
                             {"max_parallel", change(max_parallel)},
                             {"daily_cap", change(daily_cap)},
                             {"budget", change(budget)}};
  db::console::record_operator_event(tx, actor.who, "batch_set", std::nullopt, batch, actor.reason,
                                     boost::json::serialize(detail));
  return now;
}

Outcome set_budget(pqxx::transaction_base& tx, const std::string& batch, std::optional<std::int64_t> budget,
                   const Actor& actor) {
  Outcome out;
  if (!budget) {
    auto rows = db::batches::list(tx, batch);
    if (rows.empty() || !rows.front().settings.budget) {
      Refusal r;
      r.count = 0;
      r.reason = "batch \"" + batch + "\" has no budget to remove";
      r.message = r.reason;
      out.refused.push_back(std::move(r));
      return out;
    }
  }
  db::batches::set(tx, batch, std::nullopt, std::nullopt, std::nullopt, db::batches::Change<std::int64_t>(budget));
  // Jobs that waited for the old budget may go now.
  db::jobs::notify(tx, "budget");
  boost::json::object detail{{"budget", budget ? boost::json::value(*budget) : boost::json::value(nullptr)}};
  db::console::record_operator_event(tx, actor.who, "budget", std::nullopt, batch, actor.reason,
                                     boost::json::serialize(detail));
  return out;
}

Outcome pause_batch(pqxx::transaction_base& tx, const std::optional<std::string>& batch, bool paused,
                    const Actor& actor) {
  Outcome out;
  db::batches::set_paused(tx, batch, paused, paused ? actor.reason : std::nullopt);
  if (!paused) db::jobs::notify(tx, "resume");
  db::console::record_operator_event(tx, actor.who, paused ? "batch_pause" : "batch_resume", std::nullopt, batch,
                                     actor.reason, "{}");
  return out;
}

}  // namespace klingq::operate
