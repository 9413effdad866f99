// The CHECK constraints of klingq.jobs, restated in C++ so that a bad line is reported
// with its number and skipped instead of aborting the COPY of a million good ones.
#include "loader/validate.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>

namespace klingq::loader {
namespace {

constexpr std::size_t max_prompt_chars = 2500;
constexpr std::size_t max_batch_chars = 200;
constexpr std::array<std::string_view, 3> aspect_ratios = {"16:9", "9:16", "1:1"};
constexpr std::array<std::string_view, 6> versions = {"1.0", "1.5", "1.6",
                                                      "2.0", "2.1", "2.1-master"};
constexpr std::array<std::string_view, 2> modes = {"standard", "professional"};

std::string_view trim(std::string_view text) {
  const char* spaces = " \t\r\n";
  auto first = text.find_first_not_of(spaces);
  if (first == std::string_view::npos) return {};
  auto last = text.find_last_not_of(spaces);
  return text.substr(first, last - first + 1);
}

// Quotes a value for a message, cut short so that one huge cell cannot flood the report.
std::string quoted(std::string_view text) {
  constexpr std::size_t shown = 40;
  std::string out = "\"";
  if (text.size() <= shown) {
    out.append(text);
  } else {
    std::size_t cut = shown;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    out.append(text.substr(0, cut)).append("...");
  }
  return out + "\"";
}

// The value spelled in the input, or "" for absent/null (which mean: the default).
bool is_default(const RawValue& value) {
  return value.kind == ValueKind::absent || value.kind == ValueKind::null;
}

std::string kind_error(Column column, const char* expected) {
  return std::string(name_of(column)) + " must be " + expected;
}

// Integer columns accept a JSON number or digits as text (spreadsheets export "5").
std::string parse_int(Column column, const RawValue& value, std::int64_t low,
                      std::int64_t high, int& out) {
  if (value.kind != ValueKind::text && value.kind != ValueKind::number) {
    return kind_error(column, "an integer");
  }
  if (value.json_string) {
    return std::string(name_of(column)) + " must be a JSON number, got the string " + quoted(value.text);
  }
  auto text = trim(value.text);
  std::int64_t number = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
    return std::string(name_of(column)) + " must be an integer, got " + quoted(value.text);
  }
  if (number < low || number > high) {
    return std::string(name_of(column)) + " must be between " + std::to_string(low) +
           " and " + std::to_string(high) + ", got " + std::to_string(number);
  }
  out = static_cast<int>(number);
  return "";
}

// One of a fixed set; returns the matching static literal through out.
template <std::size_t N>
std::string parse_choice(Column column, const RawValue& value,
                         const std::array<std::string_view, N>& choices,
                         std::string_view& out) {
  if (value.kind != ValueKind::text) return kind_error(column, "a string");
  auto text = trim(value.text);
  for (auto choice : choices) {
    if (text == choice) {
      out = choice;
      return "";
    }
  }
  std::string message = std::string(name_of(column)) + " must be one of";
  for (std::size_t i = 0; i < N; ++i) message += (i ? ", " : " ") + std::string(choices[i]);
  return message + "; got " + quoted(value.text);
}

// PostgreSQL text cannot hold NUL, and jsonb refuses \u0000: one such value would abort
// the COPY, so it is refused here.
bool holds_nul(const boost::json::value& value) {
  switch (value.kind()) {
    case boost::json::kind::string: {
      const auto& s = value.get_string();
      return std::string_view(s.data(), s.size()).find('\0') != std::string_view::npos;
    }
    case boost::json::kind::array:
      for (const auto& item : value.get_array())
        if (holds_nul(item)) return true;
      return false;
    case boost::json::kind::object:
      for (const auto& item : value.get_object()) {
        if (item.key().find('\0') != std::string_view::npos || holds_nul(item.value()))
          return true;
      }
      return false;
    default:
      return false;
  }
}

// PostgreSQL's numeric, which jsonb stores numbers in, holds at most 131072 digits before
// the decimal point and 16383 after (counted from the input's spelling: 10e-16384 has a
// scale of 16384) and refuses exponents beyond +-(INT_MAX/2). Boost.JSON parses such a
// number as a double (1e400 as infinity), so without this check one such line would
// abort the COPY of every other line. Returns "" or the message for `number`, a JSON
// number token.
constexpr std::int64_t max_numeric_digits_before_point = 131072;
constexpr std::int64_t max_numeric_digits_after_point = 16383;
constexpr std::int64_t max_numeric_exponent = 1073741823;  // INT_MAX / 2

std::string check_jsonb_number(std::string_view number) {
  std::size_t i = 0;
  if (i < number.size() && number[i] == '-') ++i;
  const std::size_t int_begin = i;
  while (i < number.size() && number[i] >= '0' && number[i] <= '9') ++i;
  const std::string_view int_digits = number.substr(int_begin, i - int_begin);
  std::string_view fraction_digits;
  if (i < number.size() && number[i] == '.') {
    const std::size_t begin = ++i;
    while (i < number.size() && number[i] >= '0' && number[i] <= '9') ++i;
    fraction_digits = number.substr(begin, i - begin);
  }
  std::int64_t exponent = 0;
  if (i < number.size() && (number[i] == 'e' || number[i] == 'E')) {
    ++i;
    bool negative = false;
    if (i < number.size() && (number[i] == '+' || number[i] == '-')) negative = number[i++] == '-';
    for (; i < number.size() && number[i] >= '0' && number[i] <= '9'; ++i) {
      // Saturates: anything past the limit is refused the same way.
      exponent = std::min<std::int64_t>(exponent * 10 + (number[i] - '0'), max_numeric_exponent);
    }
    if (negative) exponent = -exponent;
  }
  auto refuse = [&](const char* why) {
    return "options holds the number " + quoted(number) + ", which PostgreSQL jsonb cannot store (" +
           why + ")";
  };
  if (exponent >= max_numeric_exponent || exponent <= -max_numeric_exponent) {
    return refuse("exponent out of range");
  }
  const std::int64_t scale = static_cast<std::int64_t>(fraction_digits.size()) - exponent;
  if (scale > max_numeric_digits_after_point) {
    return refuse("more than 16383 digits after the decimal point");
  }
  // The first significant digit's place: digits before the decimal point of the value.
  std::int64_t leading_zeros = 0;
  bool nonzero = false;
  for (auto part : {int_digits, fraction_digits}) {
    for (char c : part) {
      if (c != '0') { nonzero = true; break; }
      ++leading_zeros;
    }
    if (nonzero) break;
  }
  const std::int64_t digits_before_point =
      static_cast<std::int64_t>(int_digits.size()) + exponent - leading_zeros;
  if (nonzero && digits_before_point > max_numeric_digits_before_point) {
    return refuse("more than 131072 digits before the decimal point");
  }
  return "";
}

// Every number of a JSON text (already known to be valid JSON) through check_jsonb_number.
std::string check_jsonb_numbers(std::string_view json) {
  for (std::size_t i = 0; i < json.size();) {
    const char c = json[i];
    if (c == '"') {
      for (++i; i < json.size() && json[i] != '"'; ++i) {
        if (json[i] == '\\') ++i;
      }
      ++i;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      const std::size_t begin = i;
      while (i < json.size() && std::string_view("+-.eE0123456789").find(json[i]) != std::string_view::npos) ++i;
      if (auto error = check_jsonb_number(json.substr(begin, i - begin)); !error.empty()) return error;
    } else {
      ++i;
    }
  }
  return "";
}

std::string parse_options(const RawValue& value, std::string& out) {
  if (value.kind != ValueKind::text && value.kind != ValueKind::object) {
    return "options must be a JSON object";
  }
  boost::json::error_code error;
  auto parsed = boost::json::parse(value.text, error);
  if (error) return "options is not valid JSON (" + error.message() + "): " + quoted(value.text);
  if (!parsed.is_object()) return "options must be a JSON object, got " + quoted(value.text);
  if (holds_nul(parsed)) return "options must not contain \\u0000 (PostgreSQL cannot store it)";
  if (auto error = check_jsonb_numbers(value.text); !error.empty()) return error;
  // The input's own spelling goes to jsonb, so large numbers keep their digits.
  out.assign(trim(value.text));
  return "";
}

bool digits(std::string_view text, std::size_t at, std::size_t count, int& out) {
  if (at + count > text.size()) return false;
  out = 0;
  for (std::size_t i = at; i < at + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    out = out * 10 + (text[i] - '0');
  }
  return true;
}

int days_in_month(int year, int month) {
  static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : days[month - 1];
}

}  // namespace

std::optional<Column> column_from_name(std::string_view name) {
  for (std::size_t i = 0; i < column_count; ++i) {
    if (column_names[i] == name) return static_cast<Column>(i);
  }
  return std::nullopt;
}

void Job::reset() {
  prompt.clear();
  duration = defaults::duration;
  aspect_ratio = defaults::aspect_ratio;
  version.reset();
  mode = defaults::mode;
  options.assign(defaults::options);
  priority = defaults::priority;
  run_after.assign(defaults::run_after);
  batch.reset();
  max_attempts = defaults::max_attempts;
  present.fill(false);
}

std::int64_t credit_cost(const config::CostTable& table, std::string_view mode, int duration) {
  if (mode == "professional") return duration == 10 ? table.professional_10 : table.professional_5;
  return duration == 10 ? table.standard_10 : table.standard_5;
}

void RawRecord::clear() {
  line = 0;
  for (auto& value : values) {
    value.kind = ValueKind::absent;
    value.text.clear();
    value.json_string = false;
  }
  error.clear();
}

bool is_valid_utf8(std::string_view text) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  std::size_t size = text.size();
  std::size_t i = 0;
  while (i < size) {
    // Fast path over ASCII, eight bytes at a time.
    while (i + 8 <= size) {
      std::uint64_t word;
      __builtin_memcpy(&word, bytes + i, 8);
      if (word & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= size) break;
    unsigned char c = bytes[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t length;
    std::uint32_t point;
    if (c >= 0xC2 && c <= 0xDF) length = 2, point = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) length = 3, point = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) length = 4, point = c & 0x07;
    else return false;
    if (i + length > size) return false;
    for (std::size_t k = 1; k < length; ++k) {
      if ((bytes[i + k] & 0xC0) != 0x80) return false;
      point = (point << 6) | (bytes[i + k] & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF.
    if ((length == 3 && point < 0x800) || (length == 4 && point < 0x10000) ||
        (point >= 0xD800 && point <= 0xDFFF) || point > 0x10FFFF) {
      return false;
    }
    i += length;
  }
  return true;
}

std::size_t utf8_length(std::string_view text) {
  std::size_t count = 0;
  for (char c : text) count += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return count;
}

std::string check_batch_label(std::string_view label) {
  if (!is_valid_utf8(label)) return "batch is not valid UTF-8";
  if (label.find('\0') != std::string_view::npos) return "batch must not contain NUL";
  auto length = utf8_length(label);
  if (length < 1 || length > max_batch_chars) {
    return "batch must be 1 to 200 characters, got " + std::to_string(length);
  }
  return "";
}

// Accepts what PostgreSQL reads the same way everywhere: YYYY-MM-DD, optionally
// followed by [T ]HH:MM[:SS[.fraction]] and a zone (Z, +HH, +HH:MM, +HHMM). A stamp
// without a zone is read in UTC (the load's session time zone).
std::string check_timestamp(std::string_view text) {
  if (text == "now") return "";
  const std::string bad = "run_after must be an ISO 8601 time like 2025-01-31T12:00:00Z, got " +
                          quoted(text);
  int year, month, day;
  if (!digits(text, 0, 4, year) || text.size() < 10 || text[4] != '-' ||
      !digits(text, 5, 2, month) || text[7] != '-' || !digits(text, 8, 2, day)) {
    return bad;
  }
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) {
    return bad;
  }
  std::size_t at = 10;
  if (at == text.size()) return "";
  if (text[at] != 'T' && text[at] != 't' && text[at] != ' ') return bad;
  int hour, minute, second = 0;
  if (!digits(text, at + 1, 2, hour) || at + 3 >= text.size() || text[at + 3] != ':' ||
      !digits(text, at + 4, 2, minute)) {
    return bad;
  }
  at += 6;
  if (at < text.size() && text[at] == ':') {
    if (!digits(text, at + 1, 2, second)) return bad;
    at += 3;
    if (at < text.size() && text[at] == '.') {
      std::size_t start = ++at;
      while (at < text.size() && text[at] >= '0' && text[at] <= '9') ++at;
      if (at == start) return bad;
    }
  }
  if (hour > 23 || minute > 59 || second > 59) return bad;
  if (at == text.size()) return "";
  if ((text[at] == 'Z' || text[at] == 'z') && at + 1 == text.size()) return "";
  if (text[at] != '+' && text[at] != '-') return bad;
  int zone_hour, zone_minute = 0;
  if (!digits(text, at + 1, 2, zone_hour)) return bad;
  at += 3;
  if (at < text.size() && text[at] == ':') ++at;
  if (at < text.size()) {
    if (!digits(text, at, 2, zone_minute) || at + 2 != text.size()) return bad;
  }
  if (zone_hour > 15 || zone_minute > 59) return bad;
  return "";
}

std::string validate(const RawRecord& record, Job& job) {
  job.reset();
  if (!record.error.empty()) return record.error;
  for (std::size_t i = 0; i < column_count; ++i) job.present[i] = !is_default(record.values[i]);

  const auto& prompt = record[Column::prompt];
  if (prompt.kind == ValueKind::absent || prompt.kind == ValueKind::null) {
    return "prompt is required";
  }
  if (prompt.kind != ValueKind::text) return "prompt must be a string";
  if (!is_valid_utf8(prompt.text)) return "prompt is not valid UTF-8";
  if (prompt.text.find('\0') != std::string::npos) return "prompt must not contain NUL";
  if (prompt.text.find_first_not_of(" \t\r\n") == std::string::npos) {
    return "prompt is blank (jobs_prompt_not_blank)";
  }
  if (auto length = utf8_length(prompt.text); length > max_prompt_chars) {
    return "prompt is " + std::to_string(length) +
           " characters, at most 2500 allowed (jobs_prompt_max_2500_chars)";
  }
  job.prompt.assign(prompt.text);

  std::string error;
  if (const auto& v = record[Column::duration]; !is_default(v)) {
    if (!(error = parse_int(Column::duration, v, INT32_MIN, INT32_MAX, job.duration)).empty())
      return error;
    if (job.duration != 5 && job.duration != 10) {
      return "duration must be 5 or 10, got " + quoted(v.text) + " (jobs_duration_5_or_10)";
    }
  }
  if (const auto& v = record[Column::aspect_ratio]; !is_default(v)) {
    if (!(error = parse_choice(Column::aspect_ratio, v, aspect_ratios, job.aspect_ratio)).empty())
      return error;
  }
  if (const auto& v = record[Column::version]; !is_default(v)) {
    std::string_view version;
    if (!(error = parse_choice(Column::version, v, versions, version)).empty()) return error;
    job.version = version;
  }
  if (const auto& v = record[Column::mode]; !is_default(v)) {
    if (!(error = parse_choice(Column::mode, v, modes, job.mode)).empty()) return error;
  }
  if (const auto& v = record[Column::options]; !is_default(v)) {
    if (!(error = parse_options(v, job.options)).empty()) return error;
  }
  if (const auto& v = record[Column::priority]; !is_default(v)) {
    if (!(error = parse_int(Column::priority, v, INT32_MIN, INT32_MAX, job.priority)).empty())
      return error;
  }
  if (const auto& v = record[Column::run_after]; !is_default(v)) {
    if (v.kind != ValueKind::text) return "run_after must be a string";
    auto text = trim(v.text);
    if (!(error = check_timestamp(text)).empty()) return error;
    job.run_after.assign(text);
  }
  if (const auto& v = record[Column::batch]; !is_default(v)) {
    if (v.kind != ValueKind::text) return "batch must be a string";
    if (!(error = check_batch_label(v.text)).empty()) return error;
    job.batch = v.text;
  }
  if (const auto& v = record[Column::max_attempts]; !is_default(v)) {
    if (!(error = parse_int(Column::max_attempts, v, 1, 100, job.max_attempts)).empty())
      return error;
  }
  return "";
}

}  // namespace klingq::loader
