#include "util/log.hpp"

#include <boost/json.hpp>

#include <atomic>
#include <cstdio>
#include <mutex>

namespace klingq::log {
namespace {
std::atomic<int> current_level{static_cast<int>(Level::info)};
std::atomic<bool> json_lines{false};
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

std::string format(Level level, std::string_view event, std::initializer_list<Field> fields,
                   bool json) {
  if (json) {
    boost::json::object line;
    line["level"] = level_name(level);
    line["event"] = event;
    for (const auto& [key, value] : fields) line[key] = value;
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

void write(Level level, std::string_view event, std::initializer_list<Field> fields) {
  if (!enabled(level)) return;
  auto line = format(level, event, fields, json_lines.load());
  line += '\n';
  std::lock_guard lock(write_mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace klingq::log
