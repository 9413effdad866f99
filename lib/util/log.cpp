// Logging (log.hpp): formatting and the one locked write to stderr.
#include "util/log.hpp"

#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <ctime>
#include <optional>
#include <cstdio>
#include <mutex>

namespace klingq::log {
namespace {
std::atomic<int> current_level{static_cast<int>(Level::info)};
std::atomic<bool> json_lines{false};
std::atomic<bool> job_lines_at_info{true};
std::mutex write_mutex;

const char* level_name(Level level) {
  switch (level) {
    case Level::error: return "error";
    case Level::warning: return "warning";
    case Level::notice: return "notice";
    case Level::info: return "info";
    case Level::debug: return "debug";
  }
  return "info";
}

bool needs_quotes(std::string_view value) {
  if (value.empty()) return true;
  for (char c : value) {
    if (c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20) return true;
  }
  return false;
}

void append_quoted(std::string& out, std::string_view value) {
  out += '"';
  for (char c : value) {
    if (c == '"' || c == '\\') { out += '\\'; out += c; }
    else if (c == '\n') out += "\\n";
    else if (static_cast<unsigned char>(c) < 0x20) out += '?';
    else out += c;
  }
  out += '"';
}
}  // namespace

bool parse_level(std::string_view name, Level& out) {
  for (auto level : {Level::error, Level::warning, Level::notice, Level::info, Level::debug}) {
    if (name == level_name(level)) { out = level; return true; }
  }
  return false;
}

void set_level(Level level) { current_level = static_cast<int>(level); }
void set_json(bool json) { json_lines = json; }
bool enabled(Level level) { return static_cast<int>(level) <= current_level.load(); }

namespace {
// "42", "-7", "0.25": written as JSON numbers. Leading zeros ("007") and more than 15
// significant digits stay strings: a reader's double would change them.
bool plain_number(std::string_view text) {
  std::size_t i = 0, digits = 0;
  if (i < text.size() && text[i] == '-') ++i;
  const std::size_t first = i;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i, ++digits;
  if (i == first || (text[first] == '0' && i - first > 1)) return false;
  if (i < text.size() && text[i] == '.') {
    const std::size_t fraction = ++i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i, ++digits;
    if (i == fraction) return false;
  }
  return i == text.size() && digits <= 15;
}

bool identifier_key(std::string_view key) {
  return key == "instance" || key == "id" || key.ends_with("_id") || key == "version" || key == "key";
}

std::string iso_utc(std::int64_t epoch_ms) {
  const std::time_t seconds = static_cast<std::time_t>(epoch_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[40];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(epoch_ms % 1000));
  return text;
}

std::string format_line(Level level, std::string_view event, std::initializer_list<Field> fields, bool json,
                        std::optional<std::int64_t> at_epoch_ms) {
  if (json) {
    boost::json::object line;
    if (at_epoch_ms) line["ts"] = iso_utc(*at_epoch_ms);
    line["level"] = level_name(level);
    line["event"] = event;
    for (const auto& [key, value] : fields) {
      if (!identifier_key(key) && plain_number(value)) {
        boost::json::error_code error;
        auto number = boost::json::parse(value, error);
        if (!error) {
          line[key] = number;
          continue;
        }
      }
      line[key] = value;
    }
    return boost::json::serialize(line);
  }
  std::string out = "<" + std::to_string(static_cast<int>(level)) + ">";
  out += event;
  for (const auto& [key, value] : fields) {
    out += ' ';
    out += key;
    out += '=';
    if (needs_quotes(value)) append_quoted(out, value);
    else out += value;
  }
  return out;
}
}  // namespace

std::string format(Level level, std::string_view event, std::initializer_list<Field> fields, bool json) {
  return format_line(level, event, fields, json, std::nullopt);
}

std::string format(Level level, std::string_view event, std::initializer_list<Field> fields, bool json,
                   std::int64_t at_epoch_ms) {
  return format_line(level, event, fields, json, at_epoch_ms);
}

void set_job_events(bool at_info) { job_lines_at_info = at_info; }
bool job_events_at_info() { return job_lines_at_info.load(); }

void write(Level level, std::string_view event, std::initializer_list<Field> fields) {
  if (!enabled(level)) return;
  // JSON lines go to collectors that may not add a time of their own (journald's
  // key=value lines get one from journald): they carry theirs.
  const bool json = json_lines.load();
  auto line = json ? format(level, event, fields, true,
                            std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch()).count())
                   : format(level, event, fields, false);
  line += '\n';
  std::lock_guard lock(write_mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace klingq::log
