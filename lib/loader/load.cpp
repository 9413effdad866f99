// The load loop and the COPY text encoder. See load.hpp for the design.
#include "loader/load.hpp"

#include <algorithm>
#include <array>
#include <charconv>

namespace klingq::loader {
namespace {

constexpr std::size_t flush_bytes = 1 << 18;  // hand COPY data to the sink in 256 KiB

// COPY text format: backslash, tab, newline and carriage return must be escaped.
void append_escaped(std::string& out, std::string_view text) {
  static constexpr auto special = [] {
    std::array<bool, 256> table{};
    table['\\'] = table['\t'] = table['\n'] = table['\r'] = true;
    return table;
  }();
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (!special[c]) continue;
    out.append(text.data() + start, i - start);
    out.push_back('\\');
    out.push_back(c == '\\' ? '\\' : c == '\t' ? 't' : c == '\n' ? 'n' : 'r');
    start = i + 1;
  }
  out.append(text.data() + start, text.size() - start);
}

void append_int(std::string& out, int value) {
  char digits[16];
  auto [end, error] = std::to_chars(digits, digits + sizeof digits, value);
  (void)error;
  out.append(digits, end);
}

// Maps the rows of one COPY statement back to input lines, for server errors. Only the
// points where the line does not simply advance by one are stored, so a million
// one-line rows cost one entry.
class RowLines {
 public:
  void reset() {
    breaks_.clear();
    rows_ = 0;
    last_line_ = 0;
  }
  void add(std::size_t line) {
    ++rows_;
    if (breaks_.empty() || line != last_line_ + 1) breaks_.push_back({rows_, line});
    last_line_ = line;
  }
  std::size_t line_of(std::size_t row) const {
    auto it = std::upper_bound(breaks_.begin(), breaks_.end(), row,
                               [](std::size_t r, const auto& b) { return r < b.first; });
    if (it == breaks_.begin()) return 0;
    --it;
    return it->second + (row - it->first);
  }

 private:
  std::vector<std::pair<std::size_t, std::size_t>> breaks_;  // (row, line)
  std::size_t rows_ = 0;
  std::size_t last_line_ = 0;
};

}  // namespace

void append_copy_row(std::string& out, const Job& job, const std::vector<Column>& columns,
                     const std::optional<std::string>& batch_override) {
  bool first = true;
  for (Column column : columns) {
    if (!first) out.push_back('\t');
    first = false;
    switch (column) {
      case Column::prompt: append_escaped(out, job.prompt); break;
      case Column::duration: append_int(out, job.duration); break;
      case Column::aspect_ratio: out.append(job.aspect_ratio); break;
      case Column::version:
        if (job.version) out.append(*job.version);
        else out.append("\\N");
        break;
      case Column::mode: out.append(job.mode); break;
      case Column::options: append_escaped(out, job.options); break;
      case Column::priority: append_int(out, job.priority); break;
      case Column::run_after: append_escaped(out, job.run_after); break;
      case Column::batch: {
        const auto& batch = batch_override ? batch_override : job.batch;
        if (batch) append_escaped(out, *batch);
        else out.append("\\N");
        break;
      }
      case Column::max_attempts: append_int(out, job.max_attempts); break;
    }
  }
  out.push_back('\n');
}

LoadResult load(RecordReader& reader, CopySink* sink, const LoadOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  LoadResult result;
  RawRecord record;
  Job job;
  std::array<bool, column_count> listed{};  // columns of the open COPY
  std::vector<Column> columns;
  bool copy_open = false;
  bool sending = sink != nullptr;  // false after the first bad line in abort mode
  std::string buffer;
  buffer.reserve(flush_bytes + 65536);
  RowLines row_lines;

  auto finish_copy = [&] {
    if (!copy_open) return;
    if (!buffer.empty()) sink->write(buffer);
    buffer.clear();
    try {
      sink->end_copy();
    } catch (const CopyFailed& failure) {
      std::string where;
      if (auto line = row_lines.line_of(failure.copy_row); line != 0) {
        where = "line " + std::to_string(line) + ": ";
      }
      throw CopyFailed(where + failure.what(), failure.copy_row);
    }
    copy_open = false;
  };

  try {
    while (reader.next(record)) {
      ++result.records;
      if (auto error = validate(record, job); !error.empty()) {
        ++result.bad;
        LineError bad{record.line, std::move(error)};
        if (options.on_bad_line) options.on_bad_line(bad);
        if (result.errors.size() < options.max_kept_errors) result.errors.push_back(std::move(bad));
        if (options.on_error == OnError::abort) sending = false;
      } else {
        ++result.valid;
        result.credits += credit_cost(options.cost, job);
        if (sending) {
          // Widen the column list when this row sets a column the open COPY lacks.
          bool widen = !copy_open;
          for (std::size_t i = 0; i < column_count; ++i) {
            bool needed = job.present[i] ||
                          (options.batch && static_cast<Column>(i) == Column::batch);
            if (needed && !listed[i]) listed[i] = widen = true;
          }
          if (widen) {
            finish_copy();
            columns.clear();
            for (std::size_t i = 0; i < column_count; ++i)
              if (listed[i]) columns.push_back(static_cast<Column>(i));
            sink->begin_copy(columns);
            copy_open = true;
            ++result.copy_statements;
            row_lines.reset();
          }
          append_copy_row(buffer, job, columns, options.batch);
          row_lines.add(record.line);
          if (buffer.size() >= flush_bytes) {
            sink->write(buffer);
            buffer.clear();
          }
        }
      }
      if (options.on_progress && result.records % options.progress_every == 0) {
        options.on_progress({result.records, result.valid, result.bad,
                             std::chrono::steady_clock::now() - started});
      }
    }
    if (sink) {
      if (!sending) {
        result.refused = std::to_string(result.bad) + " bad line" + (result.bad == 1 ? "" : "s") +
                         " and --on-error abort: nothing was loaded";
        sink->rollback();
      } else {
        finish_copy();
        sink->commit();
        result.loaded = result.valid;
      }
    }
  } catch (const CopyFailed& failure) {
    sink->rollback();
    result.refused = std::string("the database refused the load, nothing was loaded: ") +
                     failure.what();
  } catch (...) {
    if (sink) {
      try {
        sink->rollback();
      } catch (...) {
        // The original error says more than a failed rollback on a broken connection.
      }
    }
    throw;
  }
  result.elapsed = std::chrono::steady_clock::now() - started;
  return result;
}

}  // namespace klingq::loader
