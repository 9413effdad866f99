// klingq show and klingq wait: one job with its history, and waiting for a batch. The
// statements are lib/db's (db/console.hpp, db/operator.hpp); the ETA is lib/operate's
// queue view, as the console shows it.
#include "cli/context.hpp"

#include "db/console.hpp"
#include "db/operator.hpp"
#include "operate/queue_view.hpp"

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include <chrono>
#include <ostream>
#include <thread>

namespace klingq::cli {
namespace {

boost::json::value parsed(const std::optional<std::string>& text) {
  if (!text) return nullptr;
  try {
    return boost::json::parse(*text);
  } catch (...) {
    return boost::json::value(*text);
  }
}

boost::json::value ms_json(const std::optional<std::int64_t>& ms) {
  if (!ms) return nullptr;
  return boost::json::value(iso_ms(ms));
}

std::string error_line(const boost::json::value& detail) {
  if (!detail.is_object()) return {};
  const auto& o = detail.as_object();
  std::string out;
  if (auto c = o.if_contains("class"); c && c->is_string()) out += std::string(c->as_string());
  if (auto m = o.if_contains("message"); m && m->is_string()) out += (out.empty() ? "" : ": ") + std::string(m->as_string());
  return out;
}

}  // namespace

int run_show(Context& context) {
  const auto& operands = context.arguments.operands;
  if (operands.size() != 1) throw UsageError("show needs one job ID");
  const auto id = job_ids(operands).front();
  auto connection = context.connect();
  pqxx::read_transaction tx(*connection);
  auto job = db::console::job(tx, id);
  if (!job) {
    context.err << "klingq show: no such job: " << id << "\n";
    return exit_failed;
  }
  auto events = db::console::job_events(tx, id);
  auto actions = db::console::operator_events(tx, id);
  tx.commit();

  struct Line {
    std::int64_t at;
    int order;
    std::string text;
    boost::json::object json;
  };
  std::vector<Line> timeline;
  timeline.push_back({job->created_at, 0, "created (queued)",
                      boost::json::object{{"at", iso_ms(job->created_at)}, {"kind", "created"}, {"to", "queued"}}});
  int order = 1;
  for (const auto& e : events) {
    auto detail = parsed(e.detail_json);
    std::string text = e.from_state.value_or("-") + " -> " + e.to_state + (e.instance ? " on " + *e.instance : "");
    if (detail.is_object()) {
      if (auto err = detail.as_object().if_contains("error")) {
        auto line = error_line(*err);
        if (!line.empty()) text += " (" + one_line(line, 100) + ")";
      }
      if (auto w = detail.as_object().if_contains("wait_reason"); w && w->is_string()) {
        text += " [" + std::string(w->as_string()) + "]";
      }
    }
    timeline.push_back({e.at, order++, text,
                        boost::json::object{{"at", iso_ms(e.at)}, {"kind", "state"},
                                            {"from", json_text(e.from_state)}, {"to", e.to_state},
                                            {"instance", json_text(e.instance)}, {"detail", detail}}});
  }
  for (const auto& a : actions) {
    timeline.push_back({a.at, order++, a.action + " by " + a.actor + (a.reason ? ": " + *a.reason : ""),
                        boost::json::object{{"at", iso_ms(a.at)}, {"kind", "operator"}, {"actor", a.actor},
                                            {"action", a.action}, {"reason", json_text(a.reason)},
                                            {"detail", parsed(a.detail_json)}}});
  }
  std::stable_sort(timeline.begin(), timeline.end(),
                   [](const Line& x, const Line& y) { return x.at != y.at ? x.at < y.at : x.order < y.order; });

  const auto last_error = parsed(job->last_error_json);
  if (context.json()) {
    boost::json::array list;
    for (auto& line : timeline) list.push_back(std::move(line.json));
    print_json(context.out,
               boost::json::object{{"id", job->id},
                                   {"state", job->state},
                                   {"prompt", job->prompt},
                                   {"batch", json_text(job->batch)},
                                   {"priority", job->priority},
                                   {"mode", job->mode},
                                   {"duration", job->duration},
                                   {"aspect_ratio", job->aspect_ratio},
                                   {"version", json_text(job->version)},
                                   {"attempts", job->attempts},
                                   {"max_attempts", job->max_attempts},
                                   {"remote_id", json_text(job->remote_id)},
                                   {"credit_cost", json_int(job->credit_cost)},
                                   {"url", json_text(job->url)},
                                   {"output_path", json_text(job->output_path)},
                                   {"output_bytes", json_int(job->output_bytes)},
                                   {"output_error", parsed(job->output_error_json)},
                                   {"wait_reason", json_text(job->wait_reason)},
                                   {"last_error", last_error},
                                   {"created_at", iso_ms(job->created_at)},
                                   {"submitted_at", ms_json(job->submitted_at)},
                                   {"completed_at", ms_json(job->completed_at)},
                                   {"timeline", list}});
    return exit_ok;
  }
  auto& out = context.out;
  out << "job " << job->id << "  " << job->state << (job->batch ? "  batch " + *job->batch : std::string()) << "  priority "
      << job->priority << "\n";
  out << "prompt: " << one_line(job->prompt, 200) << "\n";
  out << "mode: " << job->mode << ", " << job->duration << " s, " << job->aspect_ratio
      << (job->version ? ", version " + *job->version : std::string()) << "\n";
  out << "attempts: " << job->attempts << " of " << job->max_attempts << "   remote id: " << text_or(job->remote_id, "-")
      << "   cost: " << (job->credit_cost ? std::to_string(*job->credit_cost) + " credits" : std::string("-")) << "\n";
  out << "video: " << text_or(job->url, "-") << "\n";
  out << "file: "
      << (job->output_path ? *job->output_path + " (" + text_or(job->output_bytes, "?") + " bytes)"
                           : job->output_error_json ? "not downloaded: " + *job->output_error_json : std::string("-"))
      << "\n";
  if (job->wait_reason) out << "waiting: " << *job->wait_reason << "\n";
  if (last_error.is_object()) {
    if (auto last = last_error.as_object().if_contains("last")) out << "last error: " << one_line(error_line(*last), 200) << "\n";
  }
  out << "created " << iso_ms(job->created_at) << ", submitted " << iso_ms(job->submitted_at) << ", completed "
      << iso_ms(job->completed_at) << "\n\ntimeline:\n";
  for (const auto& line : timeline) out << "  " << iso_ms(line.at) << "  " << line.text << "\n";
  return exit_ok;
}

int run_wait(Context& context) {
  if (!context.arguments.operands.empty()) throw UsageError("wait takes no operands");
  auto batch = context.arguments.value("--batch");
  if (!batch) throw UsageError("wait needs --batch LABEL");
  std::optional<std::chrono::steady_clock::time_point> deadline;
  if (auto text = context.arguments.value("--timeout")) {
    deadline = std::chrono::steady_clock::now() + std::chrono::seconds(positive_integer("--timeout", *text));
  }
  std::int64_t interval = 2;
  if (auto text = context.arguments.value("--interval")) interval = positive_integer("--interval", *text);
  auto connection = context.connect();
  const bool progress = context.terminal.stderr_is_tty;
  while (true) {
    std::map<std::string, std::int64_t> counts;
    std::int64_t total = 0;
    std::string eta_text;
    {
      pqxx::read_transaction tx(*connection);
      for (const auto& [state, n] : db::jobs_admin::count_batch_by_state(tx, *batch)) {
        counts[state] = n;
        total += n;
      }
      if (progress) {
        for (const auto& b : operate::queue_view(tx, context.eta, true).batches) {
          if (b.batch == batch && b.eta) eta_text = b.eta->text;
        }
      }
    }
    if (total == 0) {
      if (progress) context.err << "\n";
      context.err << "klingq wait: no jobs in batch \"" << *batch << "\"\n";
      return exit_failed;
    }
    const std::int64_t pending = counts["queued"] + counts["dispatching"] + counts["submitted"];
    const std::int64_t finished = total - pending;
    if (progress) {
      context.err << "\r\x1b[Kbatch " << *batch << ": " << finished << "/" << total << " done (" << counts["completed"]
                  << " completed, " << counts["failed"] << " failed, " << counts["cancelled"] << " cancelled)"
                  << (eta_text.empty() ? std::string() : ", " + eta_text) << std::flush;
    }
    if (pending == 0) {
      if (progress) context.err << "\n";
      if (context.json()) {
        boost::json::object states;
        for (const auto& [state, n] : counts) states[state] = n;
        print_json(context.out, boost::json::object{{"batch", *batch}, {"total", total}, {"states", states},
                                                    {"failed", counts["failed"] > 0}});
      } else {
        context.out << "batch " << *batch << " done: " << counts["completed"] << " completed, " << counts["failed"]
                    << " failed, " << counts["cancelled"] << " cancelled\n";
      }
      return counts["failed"] > 0 ? exit_failed : exit_ok;
    }
    if (deadline && std::chrono::steady_clock::now() >= *deadline) {
      if (progress) context.err << "\n";
      context.err << "klingq wait: timed out with " << pending << " of " << total << " jobs of batch \"" << *batch
                  << "\" not finished\n";
      return exit_failed;
    }
    std::this_thread::sleep_for(std::chrono::seconds(interval));
  }
}

}  // namespace klingq::cli
