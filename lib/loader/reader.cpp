// CSV and JSON-lines parsing for bulk loads. CSV follows RFC 4180: fields separated by
// commas, optionally quoted with '"', a quote inside a quoted field written twice, and
// newlines allowed inside quotes; CRLF and LF both end a record. Anything else (a quote
// inside an unquoted field, text after a closing quote) is an error of that record only.
#include "loader/reader.hpp"

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <unistd.h>
#include <utility>

namespace klingq::loader {
namespace {
constexpr std::string_view utf8_bom = "\xEF\xBB\xBF";

std::string_view strip_cr(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

bool blank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

// ---- the input's own spelling of JSON values ------------------------------------------
// Boost.JSON turns numbers into int64/uint64/double: 123456789012345678901234567890
// would lose digits and 1e400 would become infinity. Numbers, objects and arrays keep
// the bytes the input wrote instead (jsonb then stores exactly those), found by this
// scanner over a line that Boost.JSON has already accepted as valid JSON.
bool json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::size_t skip_space(std::string_view text, std::size_t i) {
  while (i < text.size() && json_space(text[i])) ++i;
  return i;
}

// i at the opening quote; returns the index after the closing one.
std::size_t skip_string(std::string_view text, std::size_t i) {
  for (++i; i < text.size() && text[i] != '"'; ++i) {
    if (text[i] == '\\') ++i;
  }
  return i + 1;
}

// i at the first byte of a value; returns the index after its last byte.
std::size_t skip_value(std::string_view text, std::size_t i) {
  if (i >= text.size()) return i;
  if (text[i] == '"') return skip_string(text, i);
  if (text[i] == '{' || text[i] == '[') {
    int depth = 0;
    while (i < text.size()) {
      const char c = text[i];
      if (c == '"') {
        i = skip_string(text, i);
        continue;
      }
      ++i;
      if (c == '{' || c == '[') ++depth;
      else if ((c == '}' || c == ']') && --depth == 0) break;
    }
    return i;
  }
  while (i < text.size() && !json_space(text[i]) && text[i] != ',' && text[i] != '}' && text[i] != ']') ++i;
  return i;
}

// Calls visit(key, value spelling) for each member of the top-level object `text`, in
// input order (a repeated key is visited again, so the last one wins, as in Boost.JSON).
template <typename Visit>
void for_each_member(std::string_view text, Visit visit) {
  std::size_t i = skip_space(text, 0);
  if (i >= text.size() || text[i] != '{') return;
  i = skip_space(text, i + 1);
  while (i < text.size() && text[i] == '"') {
    const std::size_t key_end = skip_string(text, i);
    std::string_view key_token = text.substr(i, key_end - i);
    std::string decoded;
    std::string_view key = key_token.substr(1, key_token.size() - 2);
    if (key.find('\\') != std::string_view::npos) {
      boost::json::error_code error;
      auto parsed = boost::json::parse(key_token, error);
      if (error || !parsed.is_string()) return;
      decoded.assign(parsed.get_string().data(), parsed.get_string().size());
      key = decoded;
    }
    i = skip_space(text, key_end);
    if (i >= text.size() || text[i] != ':') return;
    i = skip_space(text, i + 1);
    const std::size_t value_end = skip_value(text, i);
    visit(key, text.substr(i, value_end - i));
    i = skip_space(text, value_end);
    if (i < text.size() && text[i] == ',') i = skip_space(text, i + 1);
  }
}
}  // namespace

LineSource::LineSource(int fd, std::size_t max_line)
    : max_line_(max_line), fd_(fd), buffer_(std::min(chunk_bytes, max_line + 1), '\0') {}

LineSource::LineSource(std::string text) : buffer_(std::move(text)), end_(buffer_.size()), eof_(true) {}

bool LineSource::fill() {
  if (eof_) return false;
  if (begin_ > 0) {  // move the partial line to the front
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == buffer_.size()) buffer_.resize(std::min(buffer_.size() * 2, max_line_ + 1));
  for (;;) {
    ssize_t n = ::read(fd_, buffer_.data() + end_, buffer_.size() - end_);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(std::string("read failed: ") + std::strerror(errno));
    if (n == 0) {
      eof_ = true;
      return false;
    }
    end_ += static_cast<std::size_t>(n);
    return true;
  }
}

// A line longer than the limit is one bad line, not the end of the load: its bytes are
// read and dropped up to its newline, and it comes back empty with too_long() set.
std::optional<std::string_view> LineSource::skip_long_line() {
  too_long_ = true;
  ++line_number_;
  for (;;) {
    const void* found = std::memchr(buffer_.data() + begin_, '\n', end_ - begin_);
    if (found) {
      auto at = static_cast<std::size_t>(static_cast<const char*>(found) - buffer_.data());
      consumed_ += at + 1 - begin_;
      begin_ = at + 1;
      return std::string_view();
    }
    consumed_ += end_ - begin_;
    begin_ = end_ = 0;
    if (!fill()) return std::string_view();
  }
}

std::optional<std::string_view> LineSource::next() {
  too_long_ = false;
  std::size_t searched = begin_;
  for (;;) {
    const void* found = std::memchr(buffer_.data() + searched, '\n', end_ - searched);
    if (found) {
      auto at = static_cast<std::size_t>(static_cast<const char*>(found) - buffer_.data());
      std::string_view line(buffer_.data() + begin_, at - begin_);
      consumed_ += at + 1 - begin_;
      begin_ = at + 1;
      ++line_number_;
      return line;
    }
    if (fd_ >= 0 && end_ - begin_ > max_line_) return skip_long_line();
    searched = end_ - begin_;  // offset after fill() compacts
    if (!fill()) {
      if (begin_ == end_) return std::nullopt;
      std::string_view line(buffer_.data() + begin_, end_ - begin_);  // no final newline
      consumed_ += end_ - begin_;
      begin_ = end_;
      ++line_number_;
      return line;
    }
    searched += begin_;
  }
}

std::optional<Format> format_from_name(std::string_view name) {
  if (name == "csv") return Format::csv;
  if (name == "jsonl" || name == "json" || name == "ndjson") return Format::jsonl;
  return std::nullopt;
}

std::optional<Format> format_from_path(std::string_view path) {
  auto dot = path.rfind('.');
  if (dot == std::string_view::npos || path.find('/', dot) != std::string_view::npos) {
    return std::nullopt;
  }
  return format_from_name(path.substr(dot + 1));
}

std::string CsvReader::read_cells(std::string_view line) {
  cells_.clear();
  std::string error;
  const std::size_t first_line = source_.line_number();
  bool cr = !line.empty() && line.back() == '\r';
  std::string_view body = cr ? line.substr(0, line.size() - 1) : line;
  std::size_t i = 0;
  for (;;) {  // one cell per iteration
    std::string& cell = cells_.emplace_back();
    if (i < body.size() && body[i] == '"') {
      ++i;
      for (;;) {  // inside quotes, possibly across lines
        auto quote = body.find('"', i);
        if (quote == std::string_view::npos) {
          cell.append(body.substr(i));
          cell.append(cr ? "\r\n" : "\n");
          auto more = source_.next();
          if (!more) {
            return "unterminated quoted field (the quote opens on line " +
                   std::to_string(first_line) + ")";
          }
          if (source_.too_long()) return "a quoted field " + source_.too_long_message();
          cr = !more->empty() && more->back() == '\r';
          body = cr ? more->substr(0, more->size() - 1) : *more;
          i = 0;
          continue;
        }
        cell.append(body.substr(i, quote - i));
        if (quote + 1 < body.size() && body[quote + 1] == '"') {
          cell.push_back('"');
          i = quote + 2;
          continue;
        }
        i = quote + 1;
        break;
      }
      if (i < body.size() && body[i] != ',') {
        if (error.empty()) {
          error = "unexpected text after the closing quote of field " +
                  std::to_string(cells_.size());
        }
        auto comma = body.find(',', i);
        i = comma == std::string_view::npos ? body.size() : comma;
      }
    } else {
      auto comma = body.find(',', i);
      auto end = comma == std::string_view::npos ? body.size() : comma;
      cell.assign(body.substr(i, end - i));
      if (error.empty() && cell.find('"') != std::string::npos) {
        error = "quote inside unquoted field " + std::to_string(cells_.size()) +
                " (quote the whole field and double the quotes inside it)";
      }
      i = end;
    }
    if (i >= body.size()) break;
    ++i;  // the comma
  }
  return error;
}

std::string CsvReader::start() {
  std::optional<std::string_view> line;
  while ((line = source_.next()) && blank(*line)) {
  }
  if (!line) return "the CSV input is empty: it needs a header row naming its columns";
  std::string_view header = *line;
  if (header.substr(0, utf8_bom.size()) == utf8_bom) header.remove_prefix(utf8_bom.size());
  if (auto error = read_cells(header); !error.empty()) {
    return "line " + std::to_string(source_.line_number()) + ": header: " + error;
  }
  std::array<bool, column_count> seen{};
  for (const auto& raw_name : cells_) {
    auto first = raw_name.find_first_not_of(" \t");
    auto last = raw_name.find_last_not_of(" \t");
    std::string_view name = first == std::string::npos
                                ? std::string_view{}
                                : std::string_view(raw_name).substr(first, last - first + 1);
    auto column = column_from_name(name);
    if (!column) {
      std::string known;
      for (auto known_name : column_names) known += (known.empty() ? "" : ", ") + std::string(known_name);
      return "unknown column \"" + std::string(name) + "\" in the CSV header (known: " + known + ")";
    }
    auto index = static_cast<std::size_t>(*column);
    if (seen[index]) return "column \"" + std::string(name) + "\" appears twice in the CSV header";
    seen[index] = true;
    columns_.push_back(*column);
  }
  if (!seen[static_cast<std::size_t>(Column::prompt)]) {
    return "the CSV header has no \"prompt\" column";
  }
  return "";
}

bool CsvReader::next(RawRecord& record) {
  std::optional<std::string_view> line;
  // (An over-long line comes back empty too: it is a bad record, not a blank line.)
  while ((line = source_.next()) && !source_.too_long() && strip_cr(*line).empty()) {
  }
  if (!line) return false;
  record.clear();
  record.line = source_.line_number();
  if (source_.too_long()) {
    record.error = source_.too_long_message();
    return true;
  }
  record.error = read_cells(*line);
  if (!record.error.empty()) return true;
  if (cells_.size() != columns_.size()) {
    record.error = "expected " + std::to_string(columns_.size()) + " fields as in the header, got " +
                   std::to_string(cells_.size());
    return true;
  }
  for (std::size_t i = 0; i < columns_.size(); ++i) {
    auto& value = record[columns_[i]];
    // An empty cell means "the default", except for the prompt, which must be given.
    if (cells_[i].empty() && columns_[i] != Column::prompt) continue;
    value.kind = ValueKind::text;
    value.text.swap(cells_[i]);
  }
  return true;
}

bool JsonLinesReader::next(RawRecord& record) {
  std::optional<std::string_view> line;
  while ((line = source_.next()) && !source_.too_long() && blank(*line)) {
  }
  if (!line) return false;
  record.clear();
  record.line = source_.line_number();
  if (source_.too_long()) {
    record.error = source_.too_long_message();
    return true;
  }
  std::string_view text = strip_cr(*line);
  if (record.line == 1 && text.substr(0, utf8_bom.size()) == utf8_bom) {
    text.remove_prefix(utf8_bom.size());
  }
  // Parsing into a stack arena: no heap allocation for ordinary lines.
  unsigned char arena[16384];
  boost::json::monotonic_resource resource(arena, sizeof arena);
  boost::json::error_code error;
  boost::json::value parsed = boost::json::parse(text, error, &resource);
  if (error) {
    record.error = "not valid JSON: " + error.message();
    return true;
  }
  if (!parsed.is_object()) {
    record.error = "each line must be a JSON object";
    return true;
  }
  for (const auto& item : parsed.get_object()) {
    auto column = column_from_name(item.key());
    if (!column) {
      record.error = "unknown key \"" + std::string(item.key()) + "\"";
      return true;
    }
    auto& value = record[*column];
    const auto& json = item.value();
    switch (json.kind()) {
      case boost::json::kind::null:
        value.kind = ValueKind::null;
        break;
      case boost::json::kind::string:
        value.kind = ValueKind::text;
        value.json_string = true;
        value.text.assign(json.get_string().data(), json.get_string().size());
        break;
      case boost::json::kind::int64:
      case boost::json::kind::uint64:
      case boost::json::kind::double_:
        value.kind = ValueKind::number;
        break;
      case boost::json::kind::object:
        value.kind = ValueKind::object;
        break;
      default:
        value.kind = ValueKind::other;
        break;
    }
  }
  // Numbers, objects and arrays as the input spelled them, byte for byte. A key given
  // twice is refused: Boost.JSON keeps the last silently, like CSV never could.
  std::array<bool, column_count> seen{};
  for_each_member(text, [&](std::string_view key, std::string_view spelling) {
    auto column = column_from_name(key);
    if (!column) return;  // cannot happen: the loop above refused unknown keys
    if (std::exchange(seen[static_cast<std::size_t>(*column)], true) && record.error.empty()) {
      record.error = "key \"" + std::string(key) + "\" appears twice";
    }
    auto& value = record[*column];
    if (value.kind == ValueKind::number || value.kind == ValueKind::object || value.kind == ValueKind::other) {
      value.text.assign(spelling);
    }
  });
  return true;
}

std::unique_ptr<RecordReader> make_reader(Format format, LineSource& source) {
  if (format == Format::csv) return std::make_unique<CsvReader>(source);
  return std::make_unique<JsonLinesReader>(source);
}

}  // namespace klingq::loader
