// klingq batch set|pause|resume|list: the per-batch settings of klingq.batches (weight,
// max_parallel, daily cap, budget, pause) that the claim's fair shares read. The
// statements are lib/db's (db/batches.hpp).
#include "cli/context.hpp"

#include "db/batches.hpp"
#include "operate/operate.hpp"
#include "db/jobs.hpp"

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include <charconv>
#include <ostream>

namespace klingq::cli {
namespace {

using db::batches::Change;

// The batch an action names: its operand, or the unlabelled jobs with --unlabelled.
std::optional<std::string> named_batch(Context& context, const std::string& action) {
  const auto& operands = context.arguments.operands;
  const bool unlabelled = context.arguments.flag("--unlabelled");
  if (unlabelled) {
    if (operands.size() != 1) throw UsageError("batch " + action + " --unlabelled takes no BATCH");
    return std::nullopt;
  }
  if (operands.size() != 2) throw UsageError("batch " + action + " needs one BATCH (or --unlabelled)");
  const auto& label = operands[1];
  if (label.empty() || label.size() > 800) throw UsageError("a batch label is 1-200 characters");
  return label;
}

std::int64_t integer_in(const std::string& option, const std::string& text, std::int64_t low, std::int64_t high) {
  std::int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < low || value > high) {
    throw UsageError(option + " needs an integer from " + std::to_string(low) + " to " + std::to_string(high) +
                     ", got '" + text + "'");
  }
  return value;
}

// --max-parallel N|none and its kin: absent leaves the setting, "none" clears it.
Change<std::int64_t> change_option(Context& context, const std::string& option, std::int64_t low) {
  auto text = context.arguments.value(option);
  if (!text) return std::nullopt;
  if (*text == "none") return std::optional<std::int64_t>{};
  return std::optional<std::int64_t>{integer_in(option, *text, low, 2147483647)};
}

boost::json::value json_label(const std::optional<std::string>& batch) {
  return batch ? boost::json::value(*batch) : boost::json::value(nullptr);
}
std::string label_text(const std::optional<std::string>& batch) { return batch ? *batch : "(unlabelled)"; }

boost::json::object settings_json(const db::batches::Settings& s) {
  return {{"batch", json_label(s.batch)},        {"weight", s.weight},
          {"max_parallel", json_int(s.max_parallel)}, {"daily_cap", json_int(s.daily_cap)},
          {"budget", json_int(s.budget)},        {"paused", s.paused}};
}

int batch_set(Context& context) {
  auto batch = named_batch(context, "set");
  std::optional<int> weight;
  if (auto text = context.arguments.value("--weight")) weight = static_cast<int>(integer_in("--weight", *text, 1, 10000));
  auto max_parallel = change_option(context, "--max-parallel", 1);
  auto daily_cap = change_option(context, "--daily-cap", 0);
  auto budget = change_option(context, "--budget", 0);
  if (budget && *budget && !batch) throw UsageError("--budget needs a labelled batch (the unlabelled jobs have none)");
  if (context.arguments.value("--reason")) throw UsageError("--reason is for batch pause");
  auto connection = context.connect();
  pqxx::work tx(*connection);
  auto now = operate::set_batch(tx, batch, weight, max_parallel, daily_cap, budget, operate::cli_actor());
  tx.commit();
  if (context.json()) {
    print_json(context.out, settings_json(now));
    return exit_ok;
  }
  auto cap = [](const std::optional<std::int64_t>& v) { return text_or(v, "none"); };
  context.out << "batch " << label_text(now.batch) << ": weight " << now.weight << ", max parallel "
              << cap(now.max_parallel) << ", daily cap " << cap(now.daily_cap) << ", budget " << cap(now.budget)
              << (now.paused ? ", paused" : "") << "\n";
  return exit_ok;
}

int batch_pause(Context& context, bool paused) {
  const std::string action = paused ? "pause" : "resume";
  auto batch = named_batch(context, action);
  auto reason = context.arguments.value("--reason");
  if (reason && !paused) throw UsageError("--reason is for batch pause");
  auto connection = context.connect();
  pqxx::work tx(*connection);
  operate::pause_batch(tx, batch, paused, operate::cli_actor(reason));
  tx.commit();
  if (context.json()) {
    print_json(context.out, boost::json::object{{"batch", json_label(batch)}, {"paused", paused}});
  } else if (paused) {
    context.out << "batch " << label_text(batch) << " paused; its share goes to the other batches. "
                << "`klingq batch resume` to continue.\n";
  } else {
    context.out << "batch " << label_text(batch) << " resumed\n";
  }
  return exit_ok;
}

int batch_list(Context& context) {
  const auto& operands = context.arguments.operands;
  if (operands.size() > 1) throw UsageError("batch list takes no BATCH (use --batch)");
  auto only = context.arguments.value("--batch");
  auto connection = context.connect();
  pqxx::read_transaction tx(*connection);
  auto rows = db::batches::list(tx, only);
  if (context.json()) {
    boost::json::array out;
    for (const auto& r : rows) {
      auto item = settings_json(r.settings);
      item["paused_reason"] = json_text(r.paused_reason);
      item["queued"] = r.queued;
      item["in_flight"] = r.in_flight;
      item["submits_last_hour"] = r.submits_last_hour;
      item["share_last_hour"] = r.share_last_hour ? boost::json::value(*r.share_last_hour) : boost::json::value(nullptr);
      item["created_at"] = iso_time(r.created_at);
      item["updated_at"] = iso_time(r.updated_at);
      out.push_back(std::move(item));
    }
    print_json(context.out, boost::json::object{{"batches", out}});
    return exit_ok;
  }
  std::vector<std::vector<std::string>> table;
  for (const auto& r : rows) {
    const auto& s = r.settings;
    std::string share = "-";
    if (r.share_last_hour) share = std::to_string(static_cast<int>(*r.share_last_hour * 100 + 0.5)) + "%";
    std::string paused = s.paused ? "yes" + (r.paused_reason ? " (" + one_line(*r.paused_reason, 40) + ")" : std::string())
                                  : std::string("no");
    table.push_back({label_text(s.batch), std::to_string(s.weight), text_or(s.max_parallel, "-"),
                     text_or(s.daily_cap, "-"), text_or(s.budget, "-"), paused, std::to_string(r.queued),
                     std::to_string(r.in_flight), std::to_string(r.submits_last_hour), share});
  }
  print_table(context.out,
              {"batch", "weight", "max parallel", "daily cap", "budget", "paused", "queued", "in flight",
               "submits 1h", "share 1h"},
              table);
  return exit_ok;
}

}  // namespace

int run_batch(Context& context) {
  const auto& operands = context.arguments.operands;
  if (operands.empty()) throw UsageError("batch needs an action: set, pause, resume or list");
  const auto& action = operands[0];
  if (action == "set") return batch_set(context);
  if (action == "pause") return batch_pause(context, true);
  if (action == "resume") return batch_pause(context, false);
  if (action == "list") return batch_list(context);
  throw UsageError("unknown batch action '" + action + "' (set, pause, resume or list)");
}

}  // namespace klingq::cli
