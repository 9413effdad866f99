// The console's JSON API; see api.hpp.
#include "console/api.hpp"

#include "db/instances.hpp"
#include "db/operator.hpp"
#include "eta/eta.hpp"
#include "operate/operate.hpp"
#include "operate/queue_view.hpp"

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include <algorithm>
#include <array>
#include <map>

namespace klingq::console {
namespace json = boost::json;
namespace {

constexpr std::array<const char*, 6> states = {"queued", "dispatching", "submitted", "completed", "failed", "cancelled"};

template <typename T>
json::value opt(const std::optional<T>& v) {
  if (!v) return nullptr;
  return json::value(*v);
}

json::value parsed(const std::optional<std::string>& text) {
  if (!text) return nullptr;
  try {
    return json::parse(*text);
  } catch (...) {
    return json::value(*text);
  }
}

json::object zero_states() {
  json::object o;
  for (auto s : states) o[s] = 0;
  return o;
}

json::object job_json(const db::console::JobRow& j) {
  return {{"id", j.id},
          {"state", j.state},
          {"attempts", j.attempts},
          {"remote_id", opt(j.remote_id)},
          {"credit_cost", opt(j.credit_cost)},
          {"prompt", j.prompt},
          {"batch", opt(j.batch)},
          {"error_class", opt(j.error_class)},
          {"error_message", opt(j.error_message)},
          {"created_at", j.created_at},
          {"updated_at", j.updated_at},
          {"priority", j.priority},
          {"wait_reason", opt(j.wait_reason)}};
}

}  // namespace

ApiReply error_reply(int status, const std::string& message) {
  return {status, json::serialize(json::object{{"error", message}})};
}

SlowFigures slow_figures(pqxx::connection& connection, const Settings& s) {
  const auto started = std::chrono::steady_clock::now();
  pqxx::read_transaction tx(connection);
  SlowFigures f;
  f.counts = db::console::batch_counts(tx, s.prices);
  f.budgets = db::batches::budgets_remaining(tx, s.prices);
  f.events = db::console::events_last_hour(tx);
  f.credits_spent_hour = db::console::credits_spent_last_hour(tx);
  f.generation_seconds = operate::learned_generation_seconds(tx);
  tx.commit();
  f.read_at = to_epoch_ms(Clock::now());
  f.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return f;
}

ApiReply overview(pqxx::connection& connection, const Settings& s, const SlowFigures& slow) {
  pqxx::read_transaction tx(connection);
  auto account = db::console::account(tx);
  auto by_state = db::job_counts::by_state(tx);
  auto instances = db::console::live_instances(tx);
  auto paused_batches = db::console::paused_batches(tx);
  tx.commit();
  auto view = operate::build_view(account, slow.counts, slow.budgets, paused_batches, slow.generation_seconds, s, true);
  const auto& events = slow.events;
  const auto spent_hour = slow.credits_spent_hour;

  const std::int64_t now_ms = account ? account->now : to_epoch_ms(Clock::now());
  json::object out{{"now", now_ms},
                   {"queries", 4},
                   {"slow_figures", json::object{{"read_at", slow.read_at},
                                                 {"seconds", slow.seconds},
                                                 {"queries", 5}}}};

  json::object totals = zero_states();
  for (const auto& [state, n] : by_state) totals[state] = n;
  out["states"] = totals;
  const std::int64_t in_flight = totals["dispatching"].as_int64() + totals["submitted"].as_int64();

  // Instances, and what holds dispatch according to them.
  json::array instance_list;
  std::string hold = "none";
  std::int64_t bad_signatures = 0;
  for (const auto& i : instances) {
    json::object status;
    try {
      auto v = json::parse(i.status_json);
      if (v.is_object()) status = v.as_object();
    } catch (...) {
    }
    std::string instance_hold = status.contains("hold") && status["hold"].is_string()
                                    ? std::string(status["hold"].as_string()) : "none";
    if (hold == "none" && instance_hold != "none") hold = instance_hold;
    if (status.contains("bad_signatures") && status["bad_signatures"].is_int64()) {
      bad_signatures += status["bad_signatures"].as_int64();
    }
    instance_list.push_back(json::object{{"id", i.id},
                                         {"host", i.host},
                                         {"pid", i.pid},
                                         {"version", i.version},
                                         {"started_at", i.started_at},
                                         {"heartbeat_at", i.heartbeat_at},
                                         {"hold", instance_hold},
                                         {"status", status}});
  }
  out["instances"] = instance_list;

  if (account) {
    const auto& a = *account;
    const std::int64_t day_ends_ms = to_epoch_ms(view.day_ends);
    json::object rpm{{"limit", a.rpm_limit},
                     {"remaining", opt(a.rpm_remaining)},
                     {"reset_at", opt(a.rpm_reset_at)},
                     {"paused_until", opt(a.rpm_paused_until)},
                     {"window_seconds", s.window_seconds}};
    json::object parallel{{"limit", a.parallel_limit},
                          {"in_flight", in_flight},
                          {"headroom", a.parallel_limit == 0 ? json::value(nullptr)
                                                             : json::value(std::max<std::int64_t>(0, a.parallel_limit - in_flight))},
                          {"paused_until", opt(a.parallel_paused_until)}};
    json::object daily{{"limit", a.day_limit},
                       {"used", a.day_used},
                       {"headroom", a.day_limit == 0 ? json::value(nullptr)
                                                     : json::value(std::max<std::int64_t>(0, a.day_limit - a.day_used))},
                       {"remaining_reported", opt(a.day_remaining)},
                       {"reset_at", day_ends_ms},
                       {"day_start_ms", opt(a.day_start_ms)},
                       {"paused_until", opt(a.day_paused_until)}};
    out["limits"] = json::object{{"source", a.limits_source}, {"rpm", rpm}, {"parallel", parallel}, {"daily", daily}};
    if (a.halted_reason) hold = "halted";
    else if (a.paused) hold = "paused";
    json::value until = nullptr;
    if (hold == "rpm") until = opt(a.rpm_paused_until ? a.rpm_paused_until : a.rpm_reset_at);
    else if (hold == "daily") until = a.day_paused_until ? json::value(*a.day_paused_until) : json::value(day_ends_ms);
    else if (hold == "parallel") until = opt(a.parallel_paused_until);
    out["hold"] = json::object{{"by", hold}, {"until", until}};
    std::optional<double> runway;
    if (a.balance && spent_hour > 0) runway = static_cast<double>(std::max<std::int64_t>(0, *a.balance - s.reserve)) / spent_hour * 3600.0;
    out["credits"] = json::object{{"balance", opt(a.balance)},
                                  {"balance_at", opt(a.balance_at)},
                                  {"reserve", s.reserve},
                                  {"burn_per_hour", spent_hour},
                                  {"runway_seconds", opt(runway)}};
    out["paused"] = a.paused;
    out["paused_reason"] = opt(a.paused_reason);
    out["halted_reason"] = opt(a.halted_reason);
  } else {
    out["limits"] = nullptr;
    out["hold"] = json::object{{"by", "no_account"}, {"until", nullptr}};
    out["credits"] = nullptr;
    out["paused"] = false;
    out["paused_reason"] = nullptr;
    out["halted_reason"] = nullptr;
  }

  // The last hour: per minute for the sparkline, by class for the failures.
  const std::int64_t minute_now = now_ms / 60000 * 60000;
  std::map<std::int64_t, std::array<std::int64_t, 3>> minutes;
  for (int i = 59; i >= 0; --i) minutes[minute_now - i * 60000LL] = {0, 0, 0};
  std::int64_t rate_limited = 0, no_credit = 0, submitted = 0, completed = 0, failed = 0;
  json::object failures;
  for (const auto& e : events) {
    auto it = minutes.find(e.minute);
    const std::string cls = e.error_class.value_or("");
    if (e.to_state == "submitted") submitted += e.events;
    if (e.to_state == "completed") completed += e.events;
    if (e.to_state == "failed") {
      failed += e.events;
      const std::string key = cls.empty() ? "unknown" : cls;
      failures[key] = (failures.contains(key) ? failures[key].as_int64() : 0) + e.events;
    }
    if (cls == "rate_limited") rate_limited += e.events;
    if (cls == "no_credit") no_credit += e.events;
    if (it == minutes.end()) continue;
    if (e.to_state == "submitted") it->second[0] += e.events;
    if (e.to_state == "completed") it->second[1] += e.events;
    if (e.to_state == "failed") it->second[2] += e.events;
  }
  json::array throughput;
  for (const auto& [minute, n] : minutes) {
    throughput.push_back(json::object{{"minute", minute}, {"submitted", n[0]}, {"completed", n[1]}, {"failed", n[2]}});
  }
  out["throughput"] = throughput;
  out["last_hour"] = json::object{{"submitted", submitted},
                                  {"completed", completed},
                                  {"failed", failed},
                                  {"rate_limited", rate_limited},
                                  {"no_credit", no_credit},
                                  {"bad_signatures", bad_signatures},
                                  {"failures_by_class", failures}};

  // Batches with queued, in-flight or recent jobs.
  json::array batch_list;
  for (const auto& b : view.batches) {
    json::object states;
    for (std::size_t i = 0; i < operate::job_states.size(); ++i) states[operate::job_states[i]] = b.states[i];
    json::object entry{{"batch", opt(b.batch)},
                       {"label", b.batch ? *b.batch : std::string("(unlabelled)")},
                       {"states", states},
                       {"total", b.total},
                       {"progress", b.total ? static_cast<double>(b.finished()) / static_cast<double>(b.total) : 1.0},
                       {"credits_spent", b.credits_spent},
                       {"budget_left", opt(b.budget_left)},
                       {"paused", b.paused},
                       {"paused_reason", opt(b.paused_reason)}};
    if (b.eta) {
      entry["eta"] = json::object{{"held_by", eta::to_string(b.eta->held_by)},
                                  {"done_at", b.eta->done_at ? json::value(to_epoch_ms(*b.eta->done_at)) : json::value(nullptr)},
                                  {"jobs_payable", opt(b.eta->jobs_payable)},
                                  {"text", b.eta->text}};
    } else {
      entry["eta"] = nullptr;
    }
    batch_list.push_back(std::move(entry));
  }
  out["batches"] = batch_list;
  out["generation"] = json::object{{"p50_seconds", view.generation_seconds},
                                   {"source", view.generation_learned ? "learned" : "assumed"}};
  return {200, json::serialize(out)};
}

ApiReply jobs(pqxx::connection& connection, const db::console::JobFilter& filter, std::int64_t search_scan_rows) {
  pqxx::read_transaction tx(connection);
  auto wanted = filter;
  wanted.limit = filter.limit + 1;  // one more says whether another page exists
  if (!filter.text) {
    auto rows = db::console::jobs_page(tx, wanted);
    tx.commit();
    json::array list;
    const bool more = static_cast<std::int64_t>(rows.size()) > filter.limit;
    if (more) rows.pop_back();
    for (const auto& j : rows) list.push_back(job_json(j));
    json::value next = more && !rows.empty() ? json::value(rows.back().id) : json::value(nullptr);
    return {200, json::serialize(json::object{{"jobs", list}, {"next_after", next}})};
  }
  // A prompt search reads the ids [low, high) only: below `after` (or the newest id),
  // at most search_scan_rows of them. Matches that fill the page end it early.
  auto range = db::console::job_id_range(tx);
  if (!range) {
    tx.commit();
    return {200, json::serialize(json::object{{"jobs", json::array{}}, {"next_after", nullptr}, {"search", nullptr}})};
  }
  const auto [lowest, highest] = *range;
  const std::int64_t high = std::min(filter.before_id.value_or(highest + 1), highest + 1);
  const std::int64_t low = std::max(lowest, high - std::max<std::int64_t>(1, search_scan_rows));
  auto rows = db::console::jobs_search(tx, wanted, low, high, false);
  const bool more = static_cast<std::int64_t>(rows.size()) > filter.limit;
  if (more) rows.pop_back();
  // Where the next request goes on: after the last match shown when the page is full,
  // else below the range just read, unless that was the oldest job.
  json::value next = nullptr;
  if (more) next = rows.back().id;
  else if (low > lowest) next = low;
  const std::int64_t searched_to = more ? rows.back().id : low;
  // The first page also finds the job whose remote id is the text, wherever it is.
  if (!filter.before_id) {
    auto by_remote = db::console::jobs_search(tx, wanted, 0, 0, true);
    for (auto& j : by_remote) {
      if (std::none_of(rows.begin(), rows.end(), [&](const db::console::JobRow& r) { return r.id == j.id; })) {
        rows.push_back(std::move(j));
      }
    }
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.id > b.id; });
  }
  tx.commit();
  json::array list;
  for (const auto& j : rows) list.push_back(job_json(j));
  json::object search{{"from_id", high - 1}, {"to_id", searched_to}, {"complete", next.is_null()},
                      {"scan_rows", search_scan_rows}};
  return {200, json::serialize(json::object{{"jobs", list}, {"next_after", next}, {"search", search}})};
}

ApiReply job(pqxx::connection& connection, std::int64_t id) {
  pqxx::read_transaction tx(connection);
  auto j = db::console::job(tx, id);
  if (!j) return error_reply(404, "no such job: " + std::to_string(id));
  auto events = db::console::job_events(tx, id);
  auto actions = db::console::operator_events(tx, id);
  tx.commit();
  json::object o{{"id", j->id},
                 {"state", j->state},
                 {"prompt", j->prompt},
                 {"duration", j->duration},
                 {"aspect_ratio", j->aspect_ratio},
                 {"version", opt(j->version)},
                 {"mode", j->mode},
                 {"priority", j->priority},
                 {"batch", opt(j->batch)},
                 {"attempts", j->attempts},
                 {"max_attempts", j->max_attempts},
                 {"wait_reason", opt(j->wait_reason)},
                 {"remote_id", opt(j->remote_id)},
                 {"url", opt(j->url)},
                 {"credit_cost", opt(j->credit_cost)},
                 {"last_error", parsed(j->last_error_json)},
                 {"output_path", opt(j->output_path)},
                 {"output_bytes", opt(j->output_bytes)},
                 {"output_error", parsed(j->output_error_json)},
                 {"lease_owner", opt(j->lease_owner)},
                 {"lease_expires_at", opt(j->lease_expires_at)},
                 {"run_after", opt(j->run_after)},
                 {"created_at", j->created_at},
                 {"submitted_at", opt(j->submitted_at)},
                 {"completed_at", opt(j->completed_at)},
                 {"updated_at", j->updated_at}};
  struct Entry {
    std::int64_t at;
    int order;
    json::object body;
  };
  std::vector<Entry> timeline;
  timeline.push_back({j->created_at, 0, json::object{{"at", j->created_at}, {"kind", "created"}, {"to", "queued"}}});
  int order = 1;
  for (const auto& e : events) {
    timeline.push_back({e.at, order++, json::object{{"at", e.at}, {"kind", "state"}, {"from", opt(e.from_state)},
                                                    {"to", e.to_state}, {"instance", opt(e.instance)},
                                                    {"detail", parsed(e.detail_json)}}});
  }
  for (const auto& a : actions) {
    timeline.push_back({a.at, order++, json::object{{"at", a.at}, {"kind", "operator"}, {"actor", a.actor},
                                                    {"action", a.action}, {"reason", opt(a.reason)},
                                                    {"detail", parsed(a.detail_json)}}});
  }
  std::stable_sort(timeline.begin(), timeline.end(),
                   [](const Entry& x, const Entry& y) { return x.at != y.at ? x.at < y.at : x.order < y.order; });
  json::array list;
  for (auto& e : timeline) list.push_back(std::move(e.body));
  return {200, json::serialize(json::object{{"job", o}, {"timeline", list}})};
}

const char* to_string(Action::Kind kind) {
  switch (kind) {
    case Action::pause: return "pause";
    case Action::resume: return "resume";
    case Action::job_retry: return "retry";
    case Action::job_cancel: return "cancel";
    case Action::batch_retry_failed: return "retry_failed";
    case Action::batch_cancel: return "batch_cancel";
    case Action::batch_budget: return "budget";
    case Action::batch_pause: return "batch_pause";
    case Action::batch_resume: return "batch_resume";
  }
  return "unknown";
}

ApiReply act(pqxx::connection& connection, const Action& a, const std::string& who, std::int64_t& moved) {
  moved = 0;
  pqxx::work tx(connection);
  operate::Actor actor{who, a.reason};
  auto ids_array = [](const std::vector<std::int64_t>& ids) {
    json::array out;
    for (auto id : ids) out.push_back(id);
    return out;
  };
  auto refusals = [](const operate::Outcome& o) {
    json::array out;
    for (const auto& r : o.refused) {
      out.push_back(json::object{{"id", opt(r.id)}, {"state", opt(r.state)}, {"count", r.count}, {"reason", r.reason}});
    }
    return out;
  };
  auto batch_exists = [&](const std::optional<std::string>& batch) {
    return batch ? !db::jobs_admin::count_batch_by_state(tx, *batch).empty()
                 : !db::jobs_admin::count_unlabelled_by_state(tx).empty();
  };
  auto no_batch = [](const std::optional<std::string>& batch) {
    return error_reply(404, batch ? "no jobs in batch \"" + *batch + "\"" : std::string("no unlabelled jobs"));
  };
  // The unlabelled batch's segment is also a possible label: never act when it is one.
  if (!a.batch && (a.kind == Action::batch_retry_failed || a.kind == Action::batch_cancel ||
                   a.kind == Action::batch_pause || a.kind == Action::batch_resume || a.kind == Action::batch_budget)) {
    if (a.kind == Action::batch_budget) {
      return error_reply(400, "the unlabelled batch cannot have a budget: budgets need a batch label");
    }
    if (db::jobs_admin::batch_exists(tx, std::string(unlabelled_segment))) {
      return error_reply(409, "a batch is labelled \"" + std::string(unlabelled_segment) +
                                  "\" too, so this segment is ambiguous: that batch is %3Aunlabelled; "
                                  "relabel it to reach the unlabelled batch here");
    }
  }
  json::object out{{"action", to_string(a.kind)}, {"by", who}};
  switch (a.kind) {
    case Action::pause:
    case Action::resume: {
      auto o = a.kind == Action::pause ? operate::pause(tx, actor) : operate::resume(tx, actor);
      tx.commit();
      out["paused"] = a.kind == Action::pause;
      out["reason"] = opt(a.reason);
      out["halted_reason"] = opt(o.halted_reason);
      return {200, json::serialize(out)};
    }
    case Action::job_retry:
    case Action::job_cancel: {
      const std::int64_t id = *a.job_id;
      if (db::jobs_admin::state_by_ids(tx, {id}).empty()) return error_reply(404, "no such job: " + std::to_string(id));
      auto o = a.kind == Action::job_retry ? operate::retry_jobs(tx, {id}, actor) : operate::cancel_jobs(tx, {id}, actor);
      if (o.done.empty()) {
        // Nothing to do: leave no record of an action that did not happen.
        return error_reply(409, o.refused.empty() ? "nothing done" : o.refused.front().message);
      }
      tx.commit();
      moved = 1;
      out[a.kind == Action::job_retry ? "retried" : "cancelled"] = ids_array(o.done);
      return {200, json::serialize(out)};
    }
    case Action::batch_retry_failed:
    case Action::batch_cancel: {
      if (!batch_exists(a.batch)) return no_batch(a.batch);
      auto o = a.kind == Action::batch_cancel ? operate::cancel_batch(tx, a.batch, actor)
               : a.batch                      ? operate::retry_selection(tx, a.batch, true, actor)
                                              : operate::retry_unlabelled(tx, true, actor);
      tx.commit();
      moved = static_cast<std::int64_t>(o.done.size());
      out["batch"] = opt(a.batch);
      out[a.kind == Action::batch_cancel ? "cancelled" : "retried"] = ids_array(o.done);
      out["count"] = o.done.size();
      out["refused"] = refusals(o);
      return {200, json::serialize(out)};
    }
    case Action::batch_pause:
    case Action::batch_resume: {
      if (!batch_exists(a.batch)) return no_batch(a.batch);
      operate::pause_batch(tx, a.batch, a.kind == Action::batch_pause, actor);
      tx.commit();
      out["batch"] = opt(a.batch);
      out["paused"] = a.kind == Action::batch_pause;
      return {200, json::serialize(out)};
    }
    case Action::batch_budget: {
      auto o = operate::set_budget(tx, *a.batch, a.budget, actor);
      if (o.partial()) return error_reply(404, o.refused.front().message);
      tx.commit();
      out["batch"] = *a.batch;
      out["budget"] = opt(a.budget);
      return {200, json::serialize(out)};
    }
  }
  return error_reply(500, "unknown action");
}

}  // namespace klingq::console
