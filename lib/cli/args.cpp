// The command table and the parser. Adding an option means adding a row here; the
// command's implementation reads it back by name.
#include "cli/args.hpp"

#include <sstream>

namespace klingq::cli {
namespace {

const std::vector<OptionSpec> global_options = {
    {"--database", "URL", "PostgreSQL URL (else $KLINGQ_DATABASE_URL, else the config's)"},
    {"--config", "FILE", "klingqd's YAML config: database.url and the credit cost table"},
    {"--json", "", "machine-readable output: one JSON document on stdout"},
    {"--help", "", "this help; `klingq COMMAND --help` for one command"},
    {"--version", "", "print the version and exit"},
};

constexpr std::string_view exit_codes_text =
    "exit codes: 0 ok; 1 command failed or did only part of it; 2 usage error;\n"
    "            3 database unreachable; 4 validation refused the load (nothing loaded)\n";

const OptionSpec* find_option(const std::vector<OptionSpec>& options, std::string_view name) {
  for (const auto& option : options) {
    if (option.name == name) return &option;
  }
  return nullptr;
}

void append_options(std::ostringstream& out, const std::vector<OptionSpec>& options) {
  for (const auto& option : options) {
    std::string left = "  " + std::string(option.name);
    if (!option.value_name.empty()) left += " " + std::string(option.value_name);
    out << left;
    if (left.size() < 24) out << std::string(24 - left.size(), ' ');
    else out << "\n" << std::string(24, ' ');
    out << option.help << "\n";
  }
}

}  // namespace

const std::vector<CommandSpec>& commands() {
  static const std::vector<CommandSpec> table = {
      {"migrate", "", "apply the schema migrations this build carries", {},
       "Safe to run from several hosts at once (an advisory lock serialises them).\n"},
      {"submit", "FILE|-", "bulk-load prompts from CSV or JSON lines through COPY",
       {{"--format", "csv|jsonl", "input format (default: from the file extension)"},
        {"--on-error", "skip|abort", "skip: load the good lines, exit 1 if any were bad "
                                     "(default); abort: load nothing, exit 4"},
        {"--batch", "LABEL", "set this batch label on every row"},
        {"--dry-run", "", "validate and estimate credits; insert nothing"},
        {"--progress", "", "progress on stderr every 100k rows (default: when a TTY)"},
        {"--max-errors", "N", "bad lines printed on stderr (default 100; all are counted)"}},
       "CSV: a header row naming columns; JSONL: one object per line. Columns (keys):\n"
       "  prompt (required), duration (5|10), aspect_ratio (16:9|9:16|1:1), version\n"
       "  (1.0|1.5|1.6|2.0|2.1|2.1-master), mode (standard|professional), options (a JSON\n"
       "  object), priority, run_after (ISO 8601; UTC unless it names a zone), batch,\n"
       "  max_attempts (1-100). Unknown columns are refused. An empty CSV cell or a JSON\n"
       "  null means the column's default. Empty lines are ignored.\n"
       "The load is one transaction: it inserts every good row or nothing, and wakes the\n"
       "dispatchers with one NOTIFY.\n"},
      {"status", "", "jobs by state and batch, credits spent, oldest queued job, ETA",
       {{"--batch", "LABEL", "only this batch"},
        {"--watch", "", "redraw every --interval seconds until Ctrl-C"},
        {"--interval", "SECONDS", "with --watch (default 2)"}},
       "Each batch's ETA says when it will be done under the account's limits, balance and\n"
       "budget, and what holds it (\"daily cap: done Thursday 14:10 UTC\", \"credits run out\n"
       "after 4,200 more jobs\"). The generation time is the learned median\n"
       "(klingq.generation_times), or an assumed 60 s before klingqd has learned one.\n"},
      {"jobs", "", "list jobs",
       {{"--state", "STATE", "queued|dispatching|submitted|completed|failed|cancelled"},
        {"--batch", "LABEL", "only this batch"},
        {"--limit", "N", "at most N jobs, lowest id first (default 50)"}},
       "The url column is the video of a completed job (`klingq show ID` for everything).\n"},
      {"show", "ID", "one job: its fields, video URL, output file and event timeline", {},
       "The timeline merges the job's state changes (klingq.job_events) with the operator\n"
       "actions on it (klingq.operator_events: who, and why). Exit 1 for an unknown id.\n"},
      {"wait", "", "wait until a batch is done",
       {{"--batch", "LABEL", "the batch to wait for (required)"},
        {"--timeout", "SECONDS", "give up after this long (exit 1; default: wait for ever)"},
        {"--interval", "SECONDS", "how often to look (default 2)"}},
       "Exits 0 when no job of the batch is queued, dispatching or submitted and none\n"
       "failed, 1 when any failed (or on --timeout, or when the batch has no jobs). On a\n"
       "terminal a progress line on stderr shows the counts and the ETA.\n"},
      {"cancel", "ID...", "cancel queued jobs",
       {{"--batch", "LABEL", "every cancellable job of this batch instead of IDs"},
        {"--unlabelled", "", "every cancellable job without a batch instead of IDs"},
        {"--reason", "TEXT", "recorded with who cancelled (klingq.operator_events)"}},
       "Queued jobs, and jobs whose dispatching lease has expired, become cancelled.\n"
       "Submitted jobs are refused: the API has accepted and charged them. Exit 1 when any\n"
       "job asked for (or in flight in the batch) could not be cancelled.\n"},
      {"retry", "ID...", "queue failed or cancelled jobs again",
       {{"--batch", "LABEL", "the failed and cancelled jobs of this batch"},
        {"--unlabelled", "", "the failed and cancelled jobs without a batch"},
        {"--failed", "", "every failed job (with --batch or --unlabelled: of that batch)"},
        {"--reason", "TEXT", "recorded with who retried (klingq.operator_events)"}},
       "Attempts restart at 0, run_after is now, the last error moves into\n"
       "last_error.history. Jobs the API had accepted get a new idempotency key, so the\n"
       "API generates them anew. The dispatchers are woken with NOTIFY klingq_jobs.\n"},
      {"pause", "", "stop dispatch on every klingqd instance",
       {{"--reason", "TEXT", "shown by `klingq limits` and the dashboards"}},
       "Jobs already submitted still complete; nothing new is sent until `klingq resume`.\n"},
      {"resume", "", "resume dispatch after `klingq pause`",
       {{"--reason", "TEXT", "recorded with who resumed (klingq.operator_events)"}}, ""},
      {"limits", "", "the account's limits, windows, in-flight jobs, balance and pauses", {}, ""},
      {"estimate", "", "credits the queued jobs will cost, against the known balance",
       {{"--batch", "LABEL", "only this batch"}},
       "Counts jobs queued or being dispatched, priced by the cost table (--config, else\n"
       "standard 5s=100, 10s=200, professional 5s=300, 10s=500), and says when they will\n"
       "be done under the account's limits (the ETA of `klingq status`). Exits 1 when the\n"
       "known balance (less credits.reserve) is short of the estimate.\n"},
      {"batch", "set|pause|resume BATCH | list", "per-batch weight, caps, budget and pause (fair shares)",
       {{"--weight", "N", "set: the batch's share among runnable batches of its priority (1-10000, default 1)"},
        {"--max-parallel", "N|none", "set: at most N of its jobs in flight at once"},
        {"--daily-cap", "N|none", "set: at most N of its submits per provider day"},
        {"--budget", "N|none", "set: at most N credits committed by its jobs"},
        {"--reason", "TEXT", "pause: shown by `klingq batch list`"},
        {"--unlabelled", "", "set/pause/resume the jobs without a batch instead of BATCH"},
        {"--batch", "LABEL", "list: only this batch"}},
       "Within one priority, every batch with runnable jobs gets its weight's share of\n"
       "submits (requests, parallel slots, the day). A batch that cannot use its share\n"
       "(paused, capped, out of budget) leaves it to the others. Settings not given are\n"
       "kept; `none` clears a cap. Changes take effect at the next claim of every klingqd.\n"},
  };
  return table;
}

const CommandSpec* find_command(std::string_view name) {
  for (const auto& command : commands()) {
    if (command.name == name) return &command;
  }
  return nullptr;
}

std::optional<std::string> Arguments::value(const std::string& name) const {
  auto it = values.find(name);
  if (it == values.end()) return std::nullopt;
  return it->second;
}

Arguments parse_arguments(const std::vector<std::string>& arguments) {
  Arguments parsed;
  const CommandSpec* command = nullptr;
  bool options_done = false;
  for (std::size_t i = 0; i < arguments.size(); ++i) {
    std::string argument = arguments[i];
    if (options_done || argument == "-" || argument.size() < 2 || argument[0] != '-') {
      if (!command && parsed.command.empty()) {
        command = find_command(argument);
        if (!command) throw UsageError("unknown command '" + argument + "'");
        parsed.command = argument;
      } else {
        parsed.operands.push_back(argument);
      }
      continue;
    }
    if (argument == "--") {
      options_done = true;
      continue;
    }
    if (argument == "--help" || argument == "-h") {
      parsed.help = true;
      continue;
    }
    if (argument == "--version") {
      parsed.version = true;
      continue;
    }
    std::optional<std::string> inline_value;
    if (auto equals = argument.find('='); equals != std::string::npos) {
      inline_value = argument.substr(equals + 1);
      argument.resize(equals);
    }
    const OptionSpec* option = find_option(global_options, argument);
    if (!option && command) option = find_option(command->options, argument);
    if (!option) {
      throw UsageError("unknown option '" + argument + "'" +
                       (command ? " for " + std::string(command->name) : std::string()));
    }
    if (option->value_name.empty()) {
      if (inline_value) throw UsageError(argument + " takes no value");
      parsed.flags.insert(argument);
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= arguments.size()) {
        throw UsageError(argument + " needs a value (" + std::string(option->value_name) + ")");
      }
      inline_value = arguments[++i];
    }
    parsed.values[argument] = *inline_value;
  }
  return parsed;
}

std::string general_help() {
  std::ostringstream out;
  out << "usage: klingq [--database URL | --config FILE] [--json] COMMAND [OPTIONS]\n\n"
         "klingq operates the klingq job queue in PostgreSQL.\n\ncommands:\n";
  for (const auto& command : commands()) {
    std::string name = "  " + std::string(command.name);
    out << name << std::string(name.size() < 12 ? 12 - name.size() : 1, ' ') << command.summary
        << "\n";
  }
  out << "\nglobal options:\n";
  append_options(out, global_options);
  out << "\n" << exit_codes_text;
  return out.str();
}

std::string command_help(const CommandSpec& command) {
  std::ostringstream out;
  out << "usage: klingq " << command.name;
  if (!command.options.empty()) out << " [OPTIONS]";
  if (!command.operands.empty()) out << " " << command.operands;
  out << "\n\n" << command.summary << "\n";
  if (!command.options.empty()) {
    out << "\noptions:\n";
    append_options(out, command.options);
  }
  if (!command.details.empty()) out << "\n" << command.details;
  out << "\nglobal options:\n";
  append_options(out, global_options);
  out << "\n" << exit_codes_text;
  return out.str();
}

}  // namespace klingq::cli
