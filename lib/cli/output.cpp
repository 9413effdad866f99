// Output helpers shared by the commands: JSON, tables, times and durations.
#include "cli/context.hpp"

#include <cstdio>
#include <ctime>

#include "loader/validate.hpp"

#include <boost/json/serialize.hpp>

#include <charconv>
#include <cmath>
#include <ostream>

namespace klingq::cli {

void print_json(std::ostream& out, const boost::json::value& value) {
  out << boost::json::serialize(value) << "\n";
}

std::string iso_time(const std::string& text) {
  // In a UTC session PostgreSQL prints "YYYY-MM-DD HH:MM:SS[.ffffff]+00".
  std::string iso = text;
  if (iso.size() > 10 && iso[10] == ' ') iso[10] = 'T';
  if (iso.size() > 3 && iso.compare(iso.size() - 3, 3, "+00") == 0) {
    iso.replace(iso.size() - 3, 3, "Z");
  }
  return iso;
}

std::string iso_ms(const std::optional<std::int64_t>& ms) {
  if (!ms) return "-";
  std::time_t seconds = static_cast<std::time_t>(*ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[40];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(*ms % 1000));
  return text;
}

boost::json::value json_time(const std::optional<std::string>& text) {
  if (!text) return nullptr;
  return boost::json::value(iso_time(*text));
}

boost::json::value json_int(const std::optional<std::int64_t>& value) {
  if (!value) return nullptr;
  return boost::json::value(*value);
}

boost::json::value json_text(const std::optional<std::string>& text) {
  if (!text) return nullptr;
  return boost::json::value(*text);
}

std::string text_or(const std::optional<std::string>& text, const std::string& if_null) {
  return text ? *text : if_null;
}

std::string text_or(const std::optional<std::int64_t>& value, const std::string& if_null) {
  return value ? std::to_string(*value) : if_null;
}

std::string human_duration(double seconds) {
  if (!(seconds >= 0)) seconds = 0;
  auto total = static_cast<std::int64_t>(std::floor(seconds));
  std::int64_t days = total / 86400, hours = total % 86400 / 3600, minutes = total % 3600 / 60,
               secs = total % 60;
  if (days) return std::to_string(days) + "d " + std::to_string(hours) + "h";
  if (hours) return std::to_string(hours) + "h " + std::to_string(minutes) + "m";
  if (minutes) return std::to_string(minutes) + "m " + std::to_string(secs) + "s";
  return std::to_string(secs) + "s";
}

void print_table(std::ostream& out, const std::vector<std::string>& headers,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths(headers.size());
  for (std::size_t i = 0; i < headers.size(); ++i) widths[i] = loader::utf8_length(headers[i]);
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], loader::utf8_length(row[i]));
    }
  }
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - loader::utf8_length(row[i]) + 2, ' ');
    }
    out << line << "\n";
  };
  print_row(headers);
  for (const auto& row : rows) print_row(row);
}

std::string one_line(const std::string& text, std::size_t max_chars) {
  std::string line;
  std::size_t chars = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    bool starts_char = (c & 0xC0) != 0x80;
    if (starts_char && chars == max_chars) {
      // Cut: drop the last character to make room for the ellipsis.
      while (!line.empty() && (static_cast<unsigned char>(line.back()) & 0xC0) == 0x80) line.pop_back();
      if (!line.empty()) line.pop_back();
      return line + "…";
    }
    if (starts_char) ++chars;
    line.push_back(c == '\n' || c == '\r' || c == '\t' ? ' ' : static_cast<char>(c));
  }
  return line;
}

std::int64_t positive_integer(const std::string& option, const std::string& text) {
  std::int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 1) {
    throw UsageError(option + " needs a positive integer, got '" + text + "'");
  }
  return value;
}

std::vector<std::int64_t> job_ids(const std::vector<std::string>& operands) {
  std::vector<std::int64_t> ids;
  for (const auto& operand : operands) ids.push_back(positive_integer("a job id", operand));
  return ids;
}

}  // namespace klingq::cli
