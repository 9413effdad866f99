// A bulk load as a loop that is independent of PostgreSQL: records come from a
// RecordReader, are validated, and good ones are encoded as COPY text rows into a
// CopySink. The real sink (loader/copy_sink.hpp) speaks libpq's COPY protocol inside
// one transaction; tests and --dry-run use none or a fake.
//
// The COPY lists only the columns the input sets, so the table fills in its own
// defaults (the same work as `psql \copy` of the same file). When a later row sets a
// column the open COPY does not list, that COPY is finished and a wider one started in
// the same transaction; rows lacking a listed column get klingq's copy of the default.
#pragma once

#include "config/config.hpp"
#include "loader/job.hpp"
#include "loader/reader.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace klingq::loader {

// Where rows go. Calls come in this order: begin_copy, write..., end_copy (repeated
// when the column list widens), then commit or rollback.
class CopySink {
 public:
  virtual ~CopySink() = default;
  virtual void begin_copy(const std::vector<Column>& columns) = 0;
  virtual void write(std::string_view rows) = 0;  // whole rows of COPY text format
  virtual void end_copy() = 0;                    // throws CopyFailed
  virtual void commit() = 0;
  virtual void rollback() = 0;
};

// The server refused the COPY (something the validator let through). copy_row is the
// 1-based row of that COPY statement, 0 when unknown.
struct CopyFailed : std::runtime_error {
  CopyFailed(const std::string& message, std::size_t copy_row)
      : std::runtime_error(message), copy_row(copy_row) {}
  std::size_t copy_row;
};

enum class OnError {
  skip,   // report bad lines, load the rest
  abort,  // load nothing when any line is bad
};

struct LineError {
  std::size_t line;     // 1-based line of the input where the record starts
  std::string message;  // what is wrong, naming the column
};

struct LoadProgress {
  std::size_t records = 0;  // records read so far
  std::size_t valid = 0;    // of which valid
  std::size_t bad = 0;      // of which refused
  std::chrono::steady_clock::duration elapsed{};
};

struct LoadOptions {
  OnError on_error = OnError::skip;
  std::optional<std::string> batch;  // --batch: overrides every row's batch
  config::CostTable cost;
  std::size_t max_kept_errors = 1000;  // LoadResult::errors keeps the first this many
  std::size_t progress_every = 100000;
  std::function<void(const LoadProgress&)> on_progress;  // every progress_every records
  std::function<void(const LineError&)> on_bad_line;     // as each bad line is found
};

struct LoadResult {
  std::size_t records = 0;  // records read (empty lines excluded)
  std::size_t valid = 0;
  std::size_t bad = 0;
  std::size_t loaded = 0;   // rows committed (0 for a dry run or a refused load)
  std::int64_t credits = 0;  // estimated cost of the valid rows
  std::vector<LineError> errors;  // the first max_kept_errors bad lines
  std::string refused;  // why nothing was loaded ("" when rows were committed or dry run)
  std::size_t copy_statements = 0;
  std::chrono::steady_clock::duration elapsed{};
};

// Runs a load. sink == nullptr is a dry run: validate and estimate only. Throws what
// the reader or sink throws for I/O and connection failures (after rolling back); a
// refusal by validation or by the server is reported in LoadResult::refused.
LoadResult load(RecordReader& reader, CopySink* sink, const LoadOptions& options);

// Appends job as one COPY text-format row listing columns (tab-separated, \N for NULL,
// backslash escapes). batch_override replaces the job's batch when set.
void append_copy_row(std::string& out, const Job& job, const std::vector<Column>& columns,
                     const std::optional<std::string>& batch_override);

}  // namespace klingq::loader
