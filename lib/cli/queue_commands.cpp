// klingq status, jobs, cancel, retry and estimate: reading and steering the queue. The
// statements are lib/db's (db/operator.hpp); here what they mean to the operator.
#include "cli/context.hpp"

#include "db/jobs.hpp"
#include "db/operator.hpp"
#include "loader/job.hpp"
#include "operate/operate.hpp"
#include "operate/queue_view.hpp"

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include <algorithm>
#include <array>
#include <map>
#include <ostream>
#include <set>
#include <sstream>
#include <thread>

namespace klingq::cli {
namespace {

constexpr std::array<const char*, 6> states = {"queued",    "dispatching", "submitted",
                                               "completed", "failed",      "cancelled"};

std::optional<std::string> batch_option(const Context& context) {
  return context.arguments.value("--batch");
}

boost::json::object zero_states() {
  boost::json::object object;
  for (const char* state : states) object[state] = 0;
  return object;
}

std::string plural(std::size_t n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

}  // namespace

namespace {
boost::json::value eta_json(const std::optional<eta::Estimate>& e) {
  if (!e) return nullptr;
  return boost::json::object{
      {"held_by", eta::to_string(e->held_by)},
      {"done_at", e->done_at ? boost::json::value(iso_ms(to_epoch_ms(*e->done_at))) : boost::json::value(nullptr)},
      {"jobs_payable", e->jobs_payable ? boost::json::value(*e->jobs_payable) : boost::json::value(nullptr)},
      {"text", e->text}};
}

int status_once(Context& context, pqxx::connection& connection) {
  auto batch = batch_option(context);
  pqxx::read_transaction tx(connection);
  auto rows = db::queue_summary::select(tx, batch);
  // Why queued jobs do not move: what holds every instance (pause, a 401 halt, no or
  // too little credit) and the reasons the queued rows give.
  const auto waiting = db::jobs_admin::count_waiting(tx, batch);
  const auto account = db::account_admin::limit_state(tx);
  std::vector<std::string> held;
  if (account) {
    if (account->halted_reason) held.push_back("halted by the API: " + *account->halted_reason + " (fix the API key)");
    if (account->paused) {
      held.push_back("paused" + (account->paused_reason ? " (" + *account->paused_reason + ")" : std::string()) +
                     ": `klingq resume` to continue");
    }
    if (account->balance && *account->balance <= context.credit_reserve) {
      held.push_back("no credit: balance " + std::to_string(*account->balance) +
                     (context.credit_reserve ? ", reserve " + std::to_string(context.credit_reserve) : std::string()) +
                     "; jobs wait for a top-up");
    }
  }
  auto view = operate::queue_view(tx, context.eta, false);
  std::map<std::optional<std::string>, std::optional<eta::Estimate>> etas;
  for (const auto& b : view.batches) etas[b.batch] = b.eta;

  boost::json::object totals = zero_states();
  std::map<std::optional<std::string>, boost::json::object> by_batch;
  std::int64_t total = 0;
  std::int64_t credits_spent = 0;
  std::optional<double> oldest_queued_seconds;
  std::optional<std::string> oldest_queued_at;
  for (const auto& row : rows) {
    const std::string& state = row.state;
    totals[state] = totals[state].as_int64() + row.jobs;
    total += row.jobs;
    auto [entry, inserted] = by_batch.try_emplace(row.batch, zero_states());
    entry->second[state] = row.jobs;
    if (state == "submitted" || state == "completed") credits_spent += row.credit_cost;
    if (state == "queued" && row.oldest_age_seconds) {
      double age = *row.oldest_age_seconds;
      if (!oldest_queued_seconds || age > *oldest_queued_seconds) {
        oldest_queued_seconds = age;
        oldest_queued_at = iso_time(row.oldest_created_at);
      }
    }
  }

  if (context.json()) {
    boost::json::array held_by;
    for (const auto& line : held) held_by.push_back(boost::json::value(line));
    boost::json::array waiting_json;
    for (const auto& [reason, jobs] : waiting) {
      waiting_json.push_back(boost::json::object{{"reason", reason}, {"jobs", jobs}});
    }
    boost::json::array batches;
    for (auto& [label, counts] : by_batch) {
      std::int64_t batch_total = 0;
      for (const auto& item : counts) batch_total += item.value().as_int64();
      batches.push_back(boost::json::object{
          {"batch", label ? boost::json::value(*label) : boost::json::value(nullptr)},
          {"states", counts},
          {"total", batch_total},
          {"eta", eta_json(etas[label])}});
    }
    print_json(context.out,
               boost::json::object{
                   {"batch", batch ? boost::json::value(*batch) : boost::json::value(nullptr)},
                   {"states", totals},
                   {"total", total},
                   {"credits_spent", credits_spent},
                   {"oldest_queued_seconds", oldest_queued_seconds
                                                 ? boost::json::value(*oldest_queued_seconds)
                                                 : boost::json::value(nullptr)},
                   {"oldest_queued_at", oldest_queued_at ? boost::json::value(*oldest_queued_at)
                                                         : boost::json::value(nullptr)},
                   {"batches", batches},
                   {"held_by", held_by},
                   {"waiting", waiting_json}});
    return exit_ok;
  }

  if (batch) {
    context.out << "batch \"" << *batch << "\"\n";
    if (auto it = etas.find(batch); it != etas.end() && it->second) context.out << "eta: " << it->second->text << "\n";
  }
  std::vector<std::vector<std::string>> table;
  for (const char* state : states) table.push_back({state, std::to_string(totals[state].as_int64())});
  table.push_back({"total", std::to_string(total)});
  print_table(context.out, {"state", "jobs"}, table);
  context.out << "\ncredits spent: " << credits_spent << "\n";
  context.out << "oldest queued: "
              << (oldest_queued_seconds ? human_duration(*oldest_queued_seconds) + " ago (" +
                                              *oldest_queued_at + ")"
                                        : std::string("none"))
              << "\n";
  for (const auto& line : held) context.out << "dispatch held: " << line << "\n";
  for (const auto& [reason, jobs] : waiting) {
    context.out << "waiting: " << plural(static_cast<std::size_t>(jobs), "queued job") << ": " << reason << "\n";
  }
  if (!batch && !by_batch.empty()) {
    context.out << "\n";
    std::vector<std::string> headers = {"batch"};
    for (const char* state : states) headers.push_back(state);
    headers.push_back("eta");
    std::vector<std::vector<std::string>> batch_rows;
    for (auto& [label, counts] : by_batch) {
      std::vector<std::string> row = {label ? *label : "(none)"};
      for (const char* state : states) row.push_back(std::to_string(counts[state].as_int64()));
      const auto& e = etas[label];
      row.push_back(e ? e->text : "-");
      batch_rows.push_back(std::move(row));
    }
    print_table(context.out, headers, batch_rows);
  }
  return exit_ok;
}
}  // namespace

int run_status(Context& context) {
  if (!context.arguments.operands.empty()) throw UsageError("status takes no operands");
  auto connection = context.connect();
  if (!context.arguments.flag("--watch")) return status_once(context, *connection);
  std::int64_t interval = 2;
  if (auto text = context.arguments.value("--interval")) interval = positive_integer("--interval", *text);
  // Redraw until interrupted (Ctrl-C ends the process); each frame is one read
  // transaction, drawn whole so that the screen never shows half of one.
  while (true) {
    std::ostringstream frame;
    Context each{context.arguments, frame, context.err, context.terminal, context.database_url,
                 context.cost,      context.credit_reserve, context.libpq_environment, context.eta};
    status_once(each, *connection);
    if (!context.json()) context.out << "\x1b[H\x1b[2J" << iso_ms(to_epoch_ms(Clock::now())) << "  (every " << interval << " s, Ctrl-C to stop)\n\n";
    context.out << frame.str() << std::flush;
    std::this_thread::sleep_for(std::chrono::seconds(interval));
  }
}

int run_jobs(Context& context) {
  if (!context.arguments.operands.empty()) throw UsageError("jobs takes no operands");
  auto state = context.arguments.value("--state");
  if (state && std::find(states.begin(), states.end(), *state) == states.end()) {
    throw UsageError("--state must be one of queued, dispatching, submitted, completed, "
                     "failed, cancelled; got '" + *state + "'");
  }
  std::int64_t limit = 50;
  if (auto text = context.arguments.value("--limit")) limit = positive_integer("--limit", *text);
  auto connection = context.connect();
  pqxx::read_transaction tx(*connection);
  auto rows = db::jobs_admin::list(tx, state, batch_option(context), limit);

  if (context.json()) {
    boost::json::array jobs;
    for (const auto& job : rows) {
      jobs.push_back(boost::json::object{{"id", job.id},
                                         {"state", job.state},
                                         {"attempts", job.attempts},
                                         {"remote_id", json_text(job.remote_id)},
                                         {"credit_cost", json_int(job.credit_cost)},
                                         {"prompt", job.prompt},
                                         {"batch", json_text(job.batch)},
                                         {"error_class", json_text(job.error_class)},
                                         {"error_message", json_text(job.error_message)},
                                         {"created_at", json_time(job.created_at)},
                                         {"url", json_text(job.url)}});
    }
    print_json(context.out, boost::json::object{{"jobs", jobs}});
    return exit_ok;
  }
  std::vector<std::vector<std::string>> table;
  for (const auto& job : rows) {
    std::string error;
    if (job.error_message || job.error_class) {
      error = text_or(job.error_class, "?") + ": " + one_line(text_or(job.error_message, ""), 60);
    }
    table.push_back({std::to_string(job.id), job.state, std::to_string(job.attempts), text_or(job.remote_id, "-"),
                     text_or(job.credit_cost, "-"), one_line(job.prompt, 40), error, text_or(job.url, "-")});
  }
  print_table(context.out, {"id", "state", "attempts", "remote_id", "credits", "prompt", "last error", "url"},
              table);
  if (static_cast<std::int64_t>(rows.size()) == limit) {
    context.out << "(first " << limit << " jobs; --limit N for more)\n";
  }
  return exit_ok;
}

int run_cancel(Context& context) {
  auto batch = batch_option(context);
  // --unlabelled: the jobs without a batch, which form one batch (as the console's
  // /api/batches/:unlabelled/cancel).
  const bool unlabelled = context.arguments.flag("--unlabelled");
  const auto& operands = context.arguments.operands;
  if (batch && unlabelled) throw UsageError("cancel takes --batch LABEL or --unlabelled, not both");
  const bool whole_batch = batch.has_value() || unlabelled;
  if (whole_batch && !operands.empty()) throw UsageError("cancel takes job IDs or a batch (--batch LABEL, --unlabelled), not both");
  if (!whole_batch && operands.empty()) throw UsageError("cancel needs job IDs, --batch LABEL or --unlabelled");
  std::vector<std::int64_t> ids;
  if (!whole_batch) ids = job_ids(operands);

  auto connection = context.connect();
  pqxx::work tx(*connection);
  auto actor = operate::cli_actor(context.arguments.value("--reason"));
  auto outcome = whole_batch ? operate::cancel_batch(tx, batch, actor) : operate::cancel_jobs(tx, ids, actor);
  tx.commit();

  // Why the others were not cancelled.
  boost::json::array refused;
  std::vector<std::string> messages;
  for (const auto& r : outcome.refused) {
    if (whole_batch) {
      refused.push_back(boost::json::object{{"state", r.state.value_or("")}, {"count", r.count}, {"reason", r.reason}});
    } else {
      refused.push_back(boost::json::object{
          {"id", *r.id}, {"state", r.state ? boost::json::value(*r.state) : boost::json::value(nullptr)},
          {"reason", r.reason}});
    }
    messages.push_back(r.message);
  }
  if (outcome.empty_batch) messages.push_back(batch ? "no jobs in batch \"" + *batch + "\"" : "no jobs without a batch");

  if (context.json()) {
    boost::json::array cancelled_ids;
    for (auto id : outcome.done) cancelled_ids.push_back(id);
    print_json(context.out, boost::json::object{{"cancelled", cancelled_ids},
                                                {"count", outcome.done.size()},
                                                {"refused", refused}});
  } else {
    context.out << "cancelled " << plural(outcome.done.size(), "job") << "\n";
  }
  for (const auto& message : messages) context.err << "klingq cancel: " << message << "\n";
  return outcome.partial() ? exit_failed : exit_ok;
}

int run_retry(Context& context) {
  auto batch = batch_option(context);
  bool failed_only = context.arguments.flag("--failed");
  const bool unlabelled = context.arguments.flag("--unlabelled");
  const auto& operands = context.arguments.operands;
  if (batch && unlabelled) throw UsageError("retry takes --batch LABEL or --unlabelled, not both");
  bool by_selection = batch.has_value() || failed_only || unlabelled;
  if (by_selection && !operands.empty()) {
    throw UsageError("retry takes job IDs or a selection (--batch LABEL, --unlabelled, --failed), not both");
  }
  if (!by_selection && operands.empty()) throw UsageError("retry needs job IDs, --batch LABEL, --unlabelled or --failed");
  std::vector<std::int64_t> ids;
  if (!by_selection) ids = job_ids(operands);

  auto connection = context.connect();
  pqxx::work tx(*connection);
  auto actor = operate::cli_actor(context.arguments.value("--reason"));
  auto outcome = unlabelled     ? operate::retry_unlabelled(tx, failed_only, actor)
                 : by_selection ? operate::retry_selection(tx, batch, failed_only, actor)
                                : operate::retry_jobs(tx, ids, actor);
  tx.commit();
  boost::json::array refused;
  std::vector<std::string> messages;
  for (const auto& r : outcome.refused) {
    refused.push_back(boost::json::object{{"id", *r.id}, {"reason", r.reason}});
    messages.push_back(r.message);
  }

  if (context.json()) {
    boost::json::array retried_ids;
    for (auto id : outcome.done) retried_ids.push_back(id);
    print_json(context.out, boost::json::object{{"retried", retried_ids},
                                                {"count", outcome.done.size()},
                                                {"refused", refused}});
  } else {
    context.out << "queued " << plural(outcome.done.size(), "job") << " again\n";
  }
  for (const auto& message : messages) context.err << "klingq retry: " << message << "\n";
  return refused.empty() ? exit_ok : exit_failed;
}

int run_estimate(Context& context) {
  if (!context.arguments.operands.empty()) throw UsageError("estimate takes no operands");
  auto batch = batch_option(context);
  auto connection = context.connect();
  pqxx::read_transaction tx(*connection);
  auto rows = db::jobs_admin::count_queued_by_price(tx, batch);
  auto account = db::account_admin::balance(tx);
  // When they will be done: the batch's ETA, or the whole queue's as one batch.
  auto view = operate::queue_view(tx, context.eta, false);
  std::optional<eta::Estimate> when;
  if (view.account) {
    if (batch) {
      for (const auto& b : view.batches) if (b.batch == batch) when = b.eta;
    } else {
      eta::BatchQueue all;
      for (const auto& b : view.batches) {
        all.queued += b.queued();
        all.in_flight += b.in_flight();
      }
      all.priority = 0;
      for (const auto& row : rows) all.queued_cost += loader::credit_cost(context.cost, row.mode, row.duration) * row.jobs;
      auto acc = operate::eta_account(view, context.eta);
      // The learned generation time, as the per-batch ETAs of this same command use.
      acc.reserve = context.credit_reserve;
      when = eta::estimate_batches(acc, {all}, view.now).front();
    }
  }

  std::int64_t jobs = 0, credits = 0;
  boost::json::array breakdown;
  std::vector<std::vector<std::string>> table;
  for (const auto& row : rows) {
    const std::string& mode = row.mode;
    int duration = row.duration;
    auto count = row.jobs;
    auto unit = loader::credit_cost(context.cost, mode, duration);
    jobs += count;
    credits += unit * count;
    breakdown.push_back(boost::json::object{{"mode", mode}, {"duration", duration},
                                            {"jobs", count}, {"credits_each", unit},
                                            {"credits", unit * count}});
    table.push_back({mode, std::to_string(duration) + "s", std::to_string(count),
                     std::to_string(unit), std::to_string(unit * count)});
  }
  std::optional<std::int64_t> balance;
  std::optional<std::string> balance_at;
  if (account && account->credits) {
    balance = *account->credits;
    if (account->balance_at) balance_at = iso_time(*account->balance_at);
  }
  std::optional<bool> sufficient;
  std::int64_t shortfall = 0;
  if (balance) {
    std::int64_t spendable = *balance - context.credit_reserve;
    sufficient = credits <= spendable;
    shortfall = credits > spendable ? credits - spendable : 0;
  }

  if (context.json()) {
    auto optional_int = [](const std::optional<std::int64_t>& v) {
      return v ? boost::json::value(*v) : boost::json::value(nullptr);
    };
    print_json(context.out,
               boost::json::object{
                   {"batch", batch ? boost::json::value(*batch) : boost::json::value(nullptr)},
                   {"jobs", jobs},
                   {"credits", credits},
                   {"by_price", breakdown},
                   {"balance", optional_int(balance)},
                   {"balance_at", balance_at ? boost::json::value(*balance_at) : boost::json::value(nullptr)},
                   {"reserve", context.credit_reserve},
                   {"sufficient", sufficient ? boost::json::value(*sufficient) : boost::json::value(nullptr)},
                   {"shortfall", shortfall},
                   {"eta", eta_json(when)}});
    return sufficient == false ? exit_failed : exit_ok;
  }
  if (batch) context.out << "batch \"" << *batch << "\"\n";
  if (!table.empty()) {
    print_table(context.out, {"mode", "duration", "jobs", "each", "credits"}, table);
    context.out << "\n";
  }
  context.out << plural(static_cast<std::size_t>(jobs), "job") << " to submit, estimated "
              << credits << " credits\n";
  if (!balance) {
    context.out << "balance: unknown (klingqd has not queried it yet)\n";
  } else {
    context.out << "balance: " << *balance << " credits"
                << (balance_at ? " as of " + *balance_at : std::string()) << "";
    if (context.credit_reserve) context.out << ", reserve " << context.credit_reserve;
    context.out << "\n"
                << (*sufficient ? "enough credit for all of them\n"
                                : "short by " + std::to_string(shortfall) + " credits\n");
  }
  context.out << "eta: " << (when ? when->text : std::string("unknown (klingqd has not started yet)")) << "\n";
  // Scripts gate a load on this: short of credits is not "ok".
  return sufficient == false ? exit_failed : exit_ok;
}

}  // namespace klingq::cli
