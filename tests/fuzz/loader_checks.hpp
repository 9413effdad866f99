// Shared by the CSV and JSON-lines targets: read every record of the input and hold each
// accepted job to the table's CHECK constraints, which validate() promises to mirror.
#pragma once

#include "fuzz_target.hpp"

#include "loader/reader.hpp"
#include "loader/validate.hpp"

#include <boost/json/parse.hpp>

namespace klingq::fuzz {

inline void check_job(const loader::Job& job) {
  require(!job.prompt.empty(), "an accepted prompt is not empty");
  require(loader::is_valid_utf8(job.prompt), "an accepted prompt is UTF-8");
  require(job.prompt.find('\0') == std::string::npos, "an accepted prompt has no NUL");
  require(loader::utf8_length(job.prompt) <= 2500, "an accepted prompt has at most 2500 chars");
  require(job.duration == 5 || job.duration == 10, "duration is 5 or 10");
  require(job.max_attempts >= 1 && job.max_attempts <= 100, "max_attempts is 1..100");
  require(loader::check_timestamp(job.run_after).empty(), "run_after is a timestamp");
  require(!job.batch || loader::check_batch_label(*job.batch).empty(), "batch is a valid label");
  boost::json::error_code error;
  auto options = boost::json::parse(job.options, error);
  require(!error && options.is_object(), "options is a JSON object");
}

inline int read_all(loader::Format format, std::string_view input) {
  loader::LineSource source{std::string(input)};
  auto reader = loader::make_reader(format, source);
  if (!reader->start().empty()) return 0;
  loader::RawRecord record;
  loader::Job job;
  std::size_t last_line = 0;
  while (reader->next(record)) {
    require(record.line > last_line, "records come in line order");
    last_line = record.line;
    if (loader::validate(record, job).empty()) check_job(job);
  }
  return 0;
}

}  // namespace klingq::fuzz
