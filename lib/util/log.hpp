// Logging: one line per event on stderr, prefixed with the syslog level as "<N>" so
// journald files it at the right priority, or one JSON object per line. Callers pass
// values already redacted: this module cannot know what is secret.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace klingq::log {

enum class Level { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

// Returns false for an unknown name.
bool parse_level(std::string_view name, Level& out);
void set_level(Level level);
void set_json(bool json);
bool enabled(Level level);

using Field = std::pair<std::string_view, std::string>;
void write(Level level, std::string_view event, std::initializer_list<Field> fields = {});

inline void debug(std::string_view e, std::initializer_list<Field> f = {}) { write(Level::debug, e, f); }
inline void info(std::string_view e, std::initializer_list<Field> f = {}) { write(Level::info, e, f); }
inline void notice(std::string_view e, std::initializer_list<Field> f = {}) { write(Level::notice, e, f); }
inline void warning(std::string_view e, std::initializer_list<Field> f = {}) { write(Level::warning, e, f); }
inline void error(std::string_view e, std::initializer_list<Field> f = {}) { write(Level::error, e, f); }

// The formatted line, without writing it (tests). In JSON, a value spelled as a plain
// decimal number ("42", "-3", "0.25") is written as a JSON number, except under keys
// that name identifiers (remote_id, instance, id-like strings end in "_id"), which stay
// strings; `at` (milliseconds since the epoch) adds "ts" as an ISO 8601 UTC time.
std::string format(Level level, std::string_view event, std::initializer_list<Field> fields,
                   bool json);
std::string format(Level level, std::string_view event, std::initializer_list<Field> fields,
                   bool json, std::int64_t at_epoch_ms);

// Per-job events (job_submitted, job_completed): at info by default (log.job_events),
// else at debug, so a busy queue can keep its log to what changes.
void set_job_events(bool at_info);
inline void job(std::string_view e, std::initializer_list<Field> f = {});

bool job_events_at_info();
inline void job(std::string_view e, std::initializer_list<Field> f) {
  write(job_events_at_info() ? Level::info : Level::debug, e, f);
}

}  // namespace klingq::log
