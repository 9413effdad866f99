// What every command gets: its parsed arguments, where to print, the database URL and
// the cost table, plus the small output helpers the commands share.
#pragma once

#include "cli/args.hpp"
#include "cli/cli.hpp"
#include "config/config.hpp"
#include "operate/queue_view.hpp"

#include <boost/json/value.hpp>
#include <pqxx/connection>

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace klingq::cli {

struct Context {
  Arguments arguments;
  std::ostream& out;
  std::ostream& err;
  Terminal terminal;
  std::string database_url;     // "" when none was configured
  config::CostTable cost;       // --config's, else the defaults
  std::int64_t credit_reserve = 0;  // credits.reserve of --config
  bool libpq_environment = false;   // no URL, but PGHOST/PGDATABASE/...: libpq's defaults
  operate::EtaSettings eta;          // what the ETA takes from --config (else the defaults)

  bool json() const { return arguments.flag("--json"); }
  // A connection in a UTC session with the schema checked; throws
  // pqxx::broken_connection (exit 3), UsageError when no URL is configured, or
  // db::SchemaTooOld.
  std::unique_ptr<pqxx::connection> connect(bool check_schema = true) const;
  // A failure the command reports itself: the message on stderr and, with --json, one
  // document {"error": message, "exit_code": code} on stdout.
  void report_error(int exit_code, const std::string& message) const;
};

using Command = int (*)(Context&);
int run_migrate(Context&);
int run_submit(Context&);
int run_status(Context&);
int run_jobs(Context&);
int run_cancel(Context&);
int run_retry(Context&);
int run_pause(Context&);
int run_resume(Context&);
int run_limits(Context&);
int run_estimate(Context&);
int run_show(Context&);
int run_wait(Context&);
int run_batch(Context&);

// --- output helpers (output.cpp) ---
void print_json(std::ostream& out, const boost::json::value& value);
// "2025-01-31 12:00:00.123+00" (a timestamptz as text in a UTC session) -> ISO 8601.
std::string iso_time(const std::string& postgres_text);
// A column NULL or not, the way the commands print it (lib/db hands time stamps over as
// PostgreSQL's text).
boost::json::value json_time(const std::optional<std::string>& postgres_text);  // ISO string or null
boost::json::value json_int(const std::optional<std::int64_t>& value);          // number or null
boost::json::value json_text(const std::optional<std::string>& text);           // string or null
std::string text_or(const std::optional<std::string>& text, const std::string& if_null);
std::string text_or(const std::optional<std::int64_t>& value, const std::string& if_null);
// Epoch milliseconds -> "2026-01-01T00:00:00.123Z"; "-" for none.
std::string iso_ms(const std::optional<std::int64_t>& ms);
// "3d 4h", "12m 5s", "42s"
std::string human_duration(double seconds);
// Left-aligned columns; widths count UTF-8 code points.
void print_table(std::ostream& out, const std::vector<std::string>& headers,
                 const std::vector<std::vector<std::string>>& rows);
// One line: newlines and tabs as spaces, cut to at most max_chars code points with "…".
std::string one_line(const std::string& text, std::size_t max_chars);
// Parses a positive integer option; throws UsageError naming the option.
std::int64_t positive_integer(const std::string& option, const std::string& text);
// Job ids from operands, in their order; throws UsageError naming a bad one.
std::vector<std::int64_t> job_ids(const std::vector<std::string>& operands);

}  // namespace klingq::cli
