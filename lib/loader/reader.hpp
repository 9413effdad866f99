// Streaming readers of bulk-load input: a buffered line source over a file descriptor,
// and record readers for CSV (RFC 4180 with a header row) and JSON lines. Memory stays
// bounded by the longest record, never the file: a 10 GB load reads in 1 MiB chunks.
#pragma once

#include "loader/validate.hpp"

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace klingq::loader {

// Physical lines of a file descriptor (or of a string, for tests). A line excludes its
// '\n' but keeps a '\r' before it: the CSV reader needs it to keep CRLF inside quoted
// fields byte-exact.
class LineSource {
 public:
  static constexpr std::size_t chunk_bytes = 1 << 20;
  static constexpr std::size_t max_line_bytes = 64 << 20;  // a longer line is a bad line

  explicit LineSource(int fd, std::size_t max_line = max_line_bytes);  // fd not owned
  explicit LineSource(std::string text);        // whole input in memory (unit tests)
  // The next line (valid until the next call), or nullopt at the end of input. A line
  // over max_line bytes comes back empty with too_long() set, its bytes skipped: the
  // readers make it one bad record. Throws std::runtime_error on a read error.
  std::optional<std::string_view> next();
  bool too_long() const { return too_long_; }  // of the last line returned
  std::string too_long_message() const {
    return "line is longer than " + (max_line_ >= (1u << 20) ? std::to_string(max_line_ >> 20) + " MiB"
                                                              : std::to_string(max_line_) + " bytes") +
           " (skipped)";
  }
  std::size_t line_number() const { return line_number_; }  // of the last line returned
  std::size_t bytes_consumed() const { return consumed_; }

 private:
  bool fill();  // reads more; false at end of input
  std::optional<std::string_view> skip_long_line();
  std::size_t max_line_ = max_line_bytes;
  bool too_long_ = false;
  int fd_ = -1;
  std::string buffer_;
  std::size_t begin_ = 0;  // start of unread data in buffer_
  std::size_t end_ = 0;    // end of valid data in buffer_
  bool eof_ = false;
  std::size_t line_number_ = 0;
  std::size_t consumed_ = 0;
};

enum class Format { csv, jsonl };
// "csv" | "jsonl" (also "json", "ndjson"); nullopt otherwise.
std::optional<Format> format_from_name(std::string_view name);
// From a file name's extension (.csv, .jsonl, .ndjson, .json); nullopt when unknown.
std::optional<Format> format_from_path(std::string_view path);

class RecordReader {
 public:
  virtual ~RecordReader() = default;
  // Reads the header, if the format has one. Returns "" or a message that refuses the
  // whole load (unknown or duplicate columns, no prompt column).
  virtual std::string start() { return ""; }
  // The next record; false at the end of input. Empty lines are skipped. A record
  // with a syntax error comes back with record.error set and line numbered.
  virtual bool next(RawRecord& record) = 0;
};

class CsvReader final : public RecordReader {
 public:
  explicit CsvReader(LineSource& source) : source_(source) {}
  std::string start() override;
  bool next(RawRecord& record) override;

 private:
  // Splits one record (possibly several physical lines) into cells_; returns the syntax
  // error, if any.
  std::string read_cells(std::string_view first_line);
  LineSource& source_;
  std::vector<Column> columns_;      // header position -> column
  std::vector<std::string> cells_;   // reused between records
};

class JsonLinesReader final : public RecordReader {
 public:
  explicit JsonLinesReader(LineSource& source) : source_(source) {}
  bool next(RawRecord& record) override;

 private:
  LineSource& source_;
};

std::unique_ptr<RecordReader> make_reader(Format format, LineSource& source);

}  // namespace klingq::loader
