// Turns the raw fields of one input record (a CSV row or a JSON object) into a Job, or
// into a message saying what is wrong, in the words of the table's CHECK constraints.
// Pure: no I/O, so every rule is unit-tested (tests/unit/loader_test.cpp).
#pragma once

#include "loader/job.hpp"

#include <array>
#include <string>
#include <string_view>

namespace klingq::loader {

// How the input spelled a value. CSV cells are untyped text; JSON keeps its types so
// that {"duration": 5} is accepted while {"duration": "5"} and {"duration": true} are
// refused with a clear message (a JSON writer that quotes numbers has a bug worth seeing).
enum class ValueKind {
  absent,  // the input did not set the column (missing key, or an empty CSV cell)
  null,    // JSON null: the column's default
  text,    // a CSV cell or a JSON string
  number,  // a JSON number; text holds its spelling
  object,  // a JSON object; text holds its serialisation
  other,   // a JSON boolean or array
};

struct RawValue {
  ValueKind kind = ValueKind::absent;
  std::string text;
  bool json_string = false;  // text came from a JSON string, not an untyped CSV cell
};

// One record as read, before validation.
struct RawRecord {
  std::size_t line = 0;                       // where the record starts (1-based)
  std::array<RawValue, column_count> values;  // indexed by Column
  std::string error;                          // a syntax error found by the reader

  RawValue& operator[](Column column) { return values[static_cast<std::size_t>(column)]; }
  const RawValue& operator[](Column column) const {
    return values[static_cast<std::size_t>(column)];
  }
  void clear();  // every value absent, no error, keeping string capacity
};

// Fills job from record and returns "" when the record is a valid job, else the first
// problem found, naming the column ("duration must be 5 or 10, got \"7\"").
std::string validate(const RawRecord& record, Job& job);

// Checks of single values, shared with the command line (--batch).
std::string check_batch_label(std::string_view label);
bool is_valid_utf8(std::string_view text);
std::size_t utf8_length(std::string_view text);  // code points of valid UTF-8
// ISO 8601 date or date-time with optional zone, or "now"; "" when fine.
std::string check_timestamp(std::string_view text);

}  // namespace klingq::loader
