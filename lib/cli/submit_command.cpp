// klingq submit: streams a CSV or JSON-lines file through the validator into one COPY
// transaction (lib/loader), reporting bad lines by number.
#include "cli/context.hpp"

#include "loader/copy_sink.hpp"
#include "loader/load.hpp"
#include "loader/reader.hpp"

#include <boost/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iomanip>
#include <ostream>
#include <sstream>

namespace klingq::cli {
namespace {

double seconds_of(std::chrono::steady_clock::duration duration) {
  return std::chrono::duration<double>(duration).count();
}

// Closes the input file (not stdin) on every way out.
struct InputFile {
  int fd = -1;
  bool owned = false;
  ~InputFile() {
    if (owned && fd >= 0) ::close(fd);
  }
};

}  // namespace

int run_submit(Context& context) {
  const auto& arguments = context.arguments;
  if (arguments.operands.size() != 1) throw UsageError("submit needs exactly one FILE (or - for stdin)");
  const std::string path = arguments.operands[0];

  std::optional<loader::Format> format;
  if (auto name = arguments.value("--format")) {
    format = loader::format_from_name(*name);
    if (!format) throw UsageError("--format must be csv or jsonl, got '" + *name + "'");
  } else {
    format = loader::format_from_path(path);
    if (!format) {
      throw UsageError("cannot tell the format of '" + path +
                       "' from its name: pass --format csv or --format jsonl");
    }
  }

  loader::LoadOptions options;
  options.cost = context.cost;
  if (auto mode = arguments.value("--on-error")) {
    if (*mode == "skip") options.on_error = loader::OnError::skip;
    else if (*mode == "abort") options.on_error = loader::OnError::abort;
    else throw UsageError("--on-error must be skip or abort, got '" + *mode + "'");
  }
  if (auto batch = arguments.value("--batch")) {
    if (auto error = loader::check_batch_label(*batch); !error.empty()) {
      throw UsageError("--batch: " + error);
    }
    options.batch = *batch;
  }
  std::size_t max_printed = 100;
  if (auto text = arguments.value("--max-errors")) {
    max_printed = text == "0" ? 0 : static_cast<std::size_t>(positive_integer("--max-errors", *text));
  }
  const bool dry_run = arguments.flag("--dry-run");

  InputFile input;
  if (path == "-") {
    input.fd = STDIN_FILENO;
  } else {
    input.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (input.fd < 0) {
      context.report_error(exit_failed, "klingq submit: cannot open " + path + ": " + std::strerror(errno));
      return exit_failed;
    }
    input.owned = true;
    ::posix_fadvise(input.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  }

  std::size_t printed = 0;
  options.on_bad_line = [&](const loader::LineError& bad) {
    if (printed++ < max_printed) {
      context.err << "klingq submit: " << path << ": line " << bad.line << ": " << bad.message << "\n";
    }
  };
  if (arguments.flag("--progress") || context.terminal.stderr_is_tty) {
    options.on_progress = [&](const loader::LoadProgress& progress) {
      double seconds = seconds_of(progress.elapsed);
      context.err << "klingq submit: " << progress.records << " rows read, " << progress.bad
                  << " bad, " << static_cast<std::int64_t>(progress.records / (seconds > 0 ? seconds : 1))
                  << " rows/s\n";
    };
  }

  loader::LineSource source(input.fd);
  auto reader = loader::make_reader(*format, source);
  if (auto refusal = reader->start(); !refusal.empty()) {
    context.err << "klingq submit: " << path << ": " << refusal << "\n";
    if (context.json()) {
      print_json(context.out, boost::json::object{{"loaded", 0}, {"refused", refusal}});
    }
    return exit_refused;
  }

  std::unique_ptr<pqxx::connection> connection;
  std::unique_ptr<loader::PgCopySink> sink;
  if (!dry_run) {
    connection = context.connect(true);
    sink = std::make_unique<loader::PgCopySink>(*connection);
  }
  auto result = loader::load(*reader, sink.get(), options);
  if (printed > max_printed) {
    context.err << "klingq submit: ... and " << (printed - max_printed) << " more bad lines\n";
  }

  const double seconds = seconds_of(result.elapsed);
  const double rate = seconds > 0 ? static_cast<double>(result.loaded) / seconds : 0;
  int code = exit_ok;
  if (!result.refused.empty()) {
    // Bad lines in abort mode are a validation refusal; anything the server refused is
    // a failed command.
    code = result.bad > 0 && options.on_error == loader::OnError::abort ? exit_refused : exit_failed;
  } else if (result.bad > 0) {
    code = options.on_error == loader::OnError::abort ? exit_refused : exit_failed;
  }

  if (context.json()) {
    boost::json::array errors;
    for (const auto& bad : result.errors) {
      errors.push_back(boost::json::object{{"line", bad.line}, {"message", bad.message}});
    }
    boost::json::object document{
        {"dry_run", dry_run},
        {"format", *format == loader::Format::csv ? "csv" : "jsonl"},
        {"records", result.records},
        {"valid", result.valid},
        {"bad", result.bad},
        {"loaded", result.loaded},
        {"credits", result.credits},
        {"batch", options.batch ? boost::json::value(*options.batch) : boost::json::value(nullptr)},
        {"errors", errors},
        {"errors_truncated", result.errors.size() < result.bad},
        {"refused", result.refused.empty() ? boost::json::value(nullptr)
                                           : boost::json::value(result.refused)},
        {"seconds", seconds},
        {"rows_per_second", rate}};
    print_json(context.out, document);
    if (!result.refused.empty()) context.err << "klingq submit: " << result.refused << "\n";
    return code;
  }

  std::ostringstream line;
  if (dry_run) {
    line << "dry run: " << result.valid << " valid job" << (result.valid == 1 ? "" : "s");
    if (result.bad) line << ", " << result.bad << " bad line" << (result.bad == 1 ? "" : "s");
    line << "; estimated cost " << result.credits << " credits";
    if (options.batch) line << " (batch \"" << *options.batch << "\")";
    context.out << line.str() << "\n";
    if (result.bad && options.on_error == loader::OnError::abort) {
      context.out << "with --on-error abort this load would be refused\n";
    }
    return code;
  }
  if (!result.refused.empty()) {
    context.err << "klingq submit: " << result.refused << "\n";
    return code;
  }
  line << "loaded " << result.loaded << " job" << (result.loaded == 1 ? "" : "s");
  if (options.batch) line << " into batch \"" << *options.batch << "\"";
  line << " in " << std::fixed << std::setprecision(2) << seconds << " s ("
       << static_cast<std::int64_t>(rate) << " rows/s); estimated cost " << result.credits
       << " credits";
  if (result.bad) line << "; skipped " << result.bad << " bad line" << (result.bad == 1 ? "" : "s");
  context.out << line.str() << "\n";
  return code;
}

}  // namespace klingq::cli
