// Entry point of the CLI: parses the command line, finds the database and the cost
// table, runs the command and maps failures to the documented exit codes.
#include "cli/cli.hpp"

#include "cli/context.hpp"
#include "util/version.hpp"
#include "db/migrations.hpp"

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include <algorithm>
#include <cstdlib>
#include <ostream>

namespace klingq::cli {
namespace {

struct Entry {
  const char* name;
  Command command;
};
constexpr Entry entries[] = {
    {"migrate", run_migrate}, {"submit", run_submit}, {"status", run_status},
    {"jobs", run_jobs},       {"cancel", run_cancel}, {"retry", run_retry},
    {"pause", run_pause},     {"resume", run_resume}, {"limits", run_limits},
    {"estimate", run_estimate}, {"show", run_show}, {"wait", run_wait}, {"batch", run_batch},
};

}  // namespace

// libpq reads PGHOST, PGDATABASE, ... itself when handed an empty connection string:
// any of them set counts as a database the operator chose.
bool libpq_environment_set() {
  for (const char* name : {"PGHOST", "PGHOSTADDR", "PGDATABASE", "PGSERVICE", "PGPORT", "PGUSER"}) {
    if (const char* value = std::getenv(name); value && *value) return true;
  }
  return false;
}

std::unique_ptr<pqxx::connection> Context::connect(bool check_schema) const {
  if (database_url.empty() && !libpq_environment) {
    throw UsageError("no database: pass --database URL, set $KLINGQ_DATABASE_URL, PGHOST/PGDATABASE or --config FILE");
  }
  // A string libpq cannot parse is a usage error (exit 2), not an unreachable database.
  if (!database_url.empty() && !config::valid_connection_string(database_url)) {
    throw UsageError("the database " + config::redact_url(database_url) +
                     " is not a libpq connection string (postgresql://... or key=value pairs)");
  }
  auto connection = std::make_unique<pqxx::connection>(database_url);
  // Time stamps print as "... +00", turned into ISO 8601 by iso_time().
  connection->set_variable("TimeZone", "'UTC'");
  if (check_schema) db::require_current_schema(*connection);
  return connection;
}

void Context::report_error(int exit_code, const std::string& message) const {
  err << message << "\n";
  if (json()) print_json(out, boost::json::object{{"error", message}, {"exit_code", exit_code}});
}

int run(const std::vector<std::string>& argument_list, std::ostream& out, std::ostream& err,
        Terminal terminal) {
  Arguments arguments;
  try {
    arguments = parse_arguments(argument_list);
  } catch (const UsageError& e) {
    // The command's own usage when one was named, not the whole global help.
    const CommandSpec* command = nullptr;
    bool json = false;
    for (const auto& argument : argument_list) {
      if (argument == "--json") json = true;
      if (!command) command = find_command(argument);
    }
    const std::string message = "klingq: " + std::string(e.what());
    err << message << "\n\n" << (command ? command_help(*command) : general_help());
    if (json) print_json(out, boost::json::object{{"error", message}, {"exit_code", exit_usage}});
    return exit_usage;
  }
  if (arguments.version) {
    out << "klingq " << version() << "\n";
    return exit_ok;
  }
  const bool json = arguments.flag("--json");
  if (arguments.command.empty()) {
    if (arguments.help) {
      out << general_help();
      return exit_ok;
    }
    err << general_help();
    if (json) print_json(out, boost::json::object{{"error", "klingq: no command given"}, {"exit_code", exit_usage}});
    return exit_usage;
  }
  if (arguments.help) {
    out << command_help(*find_command(arguments.command));
    return exit_ok;
  }

  Context context{arguments, out, err, terminal, {}, {}, 0, false, {}};
  if (auto url = arguments.value("--database")) context.database_url = *url;
  if (context.database_url.empty()) {
    if (const char* env = std::getenv("KLINGQ_DATABASE_URL"); env && *env) {
      context.database_url = env;
    }
  }
  if (auto path = arguments.value("--config")) {
    try {
      auto loaded = config::load(*path);
      if (context.database_url.empty()) context.database_url = loaded.database.url;
      context.cost = loaded.credits.cost;
      context.credit_reserve = loaded.credits.reserve;
      context.eta.reserve = loaded.credits.reserve;
      context.eta.window_seconds = loaded.limits.window_seconds;
      context.eta.requests_per_job = loaded.webhook.listen.empty() ? 1.0 / std::max(0.05, 1.0 - loaded.poll.share) : 1.0;
      context.eta.default_day_start_ms = std::int64_t{loaded.limits.day_starts_at_minutes.value_or(0)} * 60000;
    } catch (const std::exception& e) {
      context.report_error(exit_usage, "klingq: " + *path + ": " + e.what());
      return exit_usage;
    }
  }
  context.libpq_environment = context.database_url.empty() && libpq_environment_set();

  const auto& c = context.cost;
  context.eta.prices = {c.standard_5, c.standard_10, c.professional_5, c.professional_10};
  if (!arguments.value("--config")) {
    // Without --config the defaults apply, as klingqd's would.
    config::Config defaults;
    context.eta.window_seconds = defaults.limits.window_seconds;
    context.eta.requests_per_job = 1.0 / (1.0 - defaults.poll.share);
  }
  try {
    for (const auto& entry : entries) {
      if (arguments.command == entry.name) return entry.command(context);
    }
    context.report_error(exit_failed, "klingq: command '" + arguments.command + "' is not implemented");
    return exit_failed;
  } catch (const UsageError& e) {
    const std::string message = "klingq " + arguments.command + ": " + e.what();
    err << message << "\n"
        << "see `klingq " << arguments.command << " --help`\n";
    if (json) print_json(out, boost::json::object{{"error", message}, {"exit_code", exit_usage}});
    return exit_usage;
  } catch (const pqxx::broken_connection& e) {
    const std::string where = context.database_url.empty() ? std::string("(from the PG* environment)")
                                                           : config::redact_url(context.database_url);
    context.report_error(exit_unreachable, "klingq: cannot reach the database " + where + ": " +
                                               config::redact_database_error(context.database_url, e.what()));
    return exit_unreachable;
  } catch (const db::SchemaTooOld& e) {
    context.report_error(exit_failed, "klingq: " + std::string(e.what()));
    return exit_failed;
  } catch (const std::exception& e) {
    // Only a parsable URL can have reached libpq, whose messages may quote it.
    const bool parsed = config::valid_connection_string(context.database_url);
    context.report_error(exit_failed, "klingq " + arguments.command + ": " +
                                          (parsed ? config::redact_database_error(context.database_url, e.what())
                                                  : std::string(e.what())));
    return exit_failed;
  }
}

int run_migrate(Context& context) {
  auto connection = context.connect(false);
  auto applied = db::migrate(*connection);
  if (context.json()) {
    boost::json::array versions;
    for (int version : applied) versions.push_back(version);
    print_json(context.out, boost::json::object{{"applied", versions},
                                                {"schema_version", db::required_schema_version()}});
    return exit_ok;
  }
  if (applied.empty()) {
    context.out << "schema is current (version " << db::required_schema_version() << ")\n";
  }
  for (int version : applied) context.out << "applied migration " << version << "\n";
  return exit_ok;
}

}  // namespace klingq::cli
