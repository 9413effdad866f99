// The bulk-load readers, validator, COPY encoder and load loop, without a database:
// CSV quoting and line numbers, JSON lines, every column rule, and the COPY column
// list widening, through a fake sink.
#include "loader/copy_sink.hpp"
#include "loader/load.hpp"
#include "loader/reader.hpp"
#include "loader/validate.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace klingq::loader;

namespace {

struct Read {
  std::string header_error;
  std::vector<RawRecord> records;
};

Read read_all(Format format, std::string text) {
  LineSource source(std::move(text));
  auto reader = make_reader(format, source);
  Read result;
  result.header_error = reader->start();
  if (!result.header_error.empty()) return result;
  RawRecord record;
  while (reader->next(record)) result.records.push_back(record);
  return result;
}

// Validates one JSON line; returns the error ("" when valid).
std::string json_error(const std::string& line, Job* out = nullptr) {
  auto read = read_all(Format::jsonl, line + "\n");
  REQUIRE(read.records.size() == 1);
  Job job;
  auto error = validate(read.records[0], job);
  if (out) *out = job;
  return error;
}

// Records what a load sends.
struct FakeSink : CopySink {
  std::vector<std::vector<Column>> copies;
  std::string data;
  bool committed = false;
  bool rolled_back = false;
  void begin_copy(const std::vector<Column>& columns) override { copies.push_back(columns); }
  void write(std::string_view rows) override { data.append(rows); }
  void end_copy() override {}
  void commit() override { committed = true; }
  void rollback() override { rolled_back = true; }
};

LoadResult load_text(Format format, std::string text, CopySink* sink, LoadOptions options = {}) {
  LineSource source(std::move(text));
  auto reader = make_reader(format, source);
  REQUIRE(reader->start() == "");
  return load(*reader, sink, options);
}

}  // namespace

TEST_CASE("CSV: quoted fields keep commas, quotes and newlines, with the starting line number") {
  auto read = read_all(Format::csv,
                       "prompt,duration\n"
                       "plain,5\n"
                       "\"with, comma\",10\n"
                       "\"she said \"\"hi\"\"\",\n"
                       "\"two\nlines\",5\n"
                       "after,5\n");
  REQUIRE(read.header_error == "");
  REQUIRE(read.records.size() == 5);
  CHECK(read.records[0][Column::prompt].text == "plain");
  CHECK(read.records[0].line == 2);
  CHECK(read.records[1][Column::prompt].text == "with, comma");
  CHECK(read.records[1][Column::duration].text == "10");
  CHECK(read.records[2][Column::prompt].text == "she said \"hi\"");
  CHECK(read.records[2][Column::duration].kind == ValueKind::absent);  // empty cell = default
  CHECK(read.records[3][Column::prompt].text == "two\nlines");
  CHECK(read.records[3].line == 5);
  CHECK(read.records[4].line == 7);  // line numbers count physical lines
  for (const auto& record : read.records) CHECK(record.error == "");
}

TEST_CASE("CSV: CRLF ends records but stays inside quoted fields - empty lines are skipped") {
  auto read = read_all(Format::csv, "\xEF\xBB\xBFprompt,mode\r\na,standard\r\n\r\n\"x\r\ny\",professional\r\nlast,");
  REQUIRE(read.header_error == "");
  REQUIRE(read.records.size() == 3);
  CHECK(read.records[0][Column::prompt].text == "a");
  CHECK(read.records[0][Column::mode].text == "standard");  // no stray \r
  CHECK(read.records[1][Column::prompt].text == "x\r\ny");  // byte-exact
  CHECK(read.records[1].line == 4);
  CHECK(read.records[2][Column::prompt].text == "last");  // no final newline
  CHECK(read.records[2].line == 6);
}

TEST_CASE("CSV: UTF-8 and emoji pass through byte-exact") {
  std::string prompt = "猫がサーフィン 🐱🏄‍♀️ café — naïve";
  auto read = read_all(Format::csv, "prompt\n\"" + prompt + "\"\n" + prompt + "\n");
  REQUIRE(read.records.size() == 2);
  Job job;
  CHECK(validate(read.records[0], job) == "");
  CHECK(job.prompt == prompt);
  CHECK(validate(read.records[1], job) == "");
  CHECK(job.prompt == prompt);
}

TEST_CASE("CSV: syntax errors are per record and name the line") {
  auto read = read_all(Format::csv,
                       "prompt,duration\n"
                       "ok,5\n"
                       "too,many,fields\n"
                       "bare\"quote,5\n"
                       "\"closed\"junk,5\n"
                       "fine,10\n"
                       "\"never closed,5\nstill open\n");
  REQUIRE(read.records.size() == 6);
  CHECK(read.records[0].error == "");
  CHECK(read.records[1].error.find("expected 2 fields") != std::string::npos);
  CHECK(read.records[1].line == 3);
  CHECK(read.records[2].error.find("quote inside unquoted field") != std::string::npos);
  CHECK(read.records[3].error.find("after the closing quote") != std::string::npos);
  CHECK(read.records[4].error == "");
  CHECK(read.records[5].error.find("unterminated quoted field") != std::string::npos);
  CHECK(read.records[5].error.find("line 7") != std::string::npos);
}

TEST_CASE("CSV: the header must name known columns, once each, including prompt") {
  CHECK(read_all(Format::csv, "prompt,colour\nx,red\n").header_error.find("unknown column \"colour\"") !=
        std::string::npos);
  CHECK(read_all(Format::csv, "prompt,prompt\nx,y\n").header_error.find("twice") != std::string::npos);
  CHECK(read_all(Format::csv, "duration\n5\n").header_error.find("no \"prompt\" column") != std::string::npos);
  CHECK(read_all(Format::csv, "").header_error.find("empty") != std::string::npos);
  CHECK(read_all(Format::csv, " prompt , batch \nx,b\n").header_error == "");  // spaces trimmed
}

TEST_CASE("JSONL: types, nulls, blank lines, bad JSON and unknown keys, with line numbers") {
  auto read = read_all(Format::jsonl,
                       "{\"prompt\": \"a\", \"duration\": 10, \"options\": {\"camera\": {\"zoom\": 2}}}\n"
                       "\n"
                       "   \n"
                       "{\"prompt\": \"b\", \"version\": null}\r\n"
                       "{\"prompt\": \"c\",}\n"
                       "[1, 2]\n"
                       "{\"prompt\": \"d\", \"colour\": \"red\"}\n"
                       "{\"prompt\": \"e 🐱\\n\\u00e9\"}");
  REQUIRE(read.records.size() == 6);
  CHECK(read.records[0].line == 1);
  CHECK(read.records[0][Column::duration].kind == ValueKind::number);
  CHECK(read.records[0][Column::options].kind == ValueKind::object);
  CHECK(read.records[1].line == 4);
  CHECK(read.records[1][Column::version].kind == ValueKind::null);
  CHECK(read.records[1].error == "");
  CHECK(read.records[2].error.find("not valid JSON") != std::string::npos);
  CHECK(read.records[2].line == 5);
  CHECK(read.records[3].error == "each line must be a JSON object");
  CHECK(read.records[4].error == "unknown key \"colour\"");
  Job job;
  CHECK(validate(read.records[5], job) == "");
  CHECK(job.prompt == "e 🐱\n\xC3\xA9");
}

TEST_CASE("validation mirrors every CHECK of klingq.jobs") {
  struct Case {
    const char* line;
    const char* expected;  // substring of the error; "" = valid
  };
  const Case cases[] = {
      {R"({"prompt": "ok"})", ""},
      {R"({"duration": 5})", "prompt is required"},
      {R"({"prompt": null})", "prompt is required"},
      {R"({"prompt": ""})", "blank"},
      {R"({"prompt": " \t\r\n "})", "blank"},
      {R"({"prompt": 42})", "prompt must be a string"},
      {R"({"prompt": "a\u0000b"})", "NUL"},
      {R"({"prompt": "p", "duration": 10})", ""},
      // Issue 18: a quoted number in JSON is refused like a bad CSV cell (it was accepted).
      {R"({"prompt": "p", "duration": "10"})", "duration must be a JSON number, got the string \"10\""},
      {R"({"prompt": "p", "duration": 7})", "jobs_duration_5_or_10"},
      {R"({"prompt": "p", "duration": 5.5})", "must be an integer"},
      {R"({"prompt": "p", "duration": true})", "must be an integer"},
      {R"({"prompt": "p", "aspect_ratio": "9:16"})", ""},
      {R"({"prompt": "p", "aspect_ratio": "4:3"})", "aspect_ratio must be one of"},
      {R"({"prompt": "p", "version": "2.1-master"})", ""},
      {R"({"prompt": "p", "version": "3.0"})", "version must be one of"},
      {R"({"prompt": "p", "mode": "professional"})", ""},
      {R"({"prompt": "p", "mode": "ultra"})", "mode must be one of"},
      {R"({"prompt": "p", "options": {"a": [1, {"b": null}]}})", ""},
      {R"({"prompt": "p", "options": [1]})", "options must be a JSON object"},
      {R"({"prompt": "p", "options": "{\"a\": 1}"})", ""},
      {R"({"prompt": "p", "options": "{not json"})", "not valid JSON"},
      {R"({"prompt": "p", "options": {"k": "\u0000"}})", "\\u0000"},
      {R"({"prompt": "p", "priority": -3})", ""},
      {R"({"prompt": "p", "priority": 3000000000})", "between"},
      {R"({"prompt": "p", "run_after": "2030-01-31T12:00:00Z"})", ""},
      {R"({"prompt": "p", "run_after": "2030-01-31 12:00:00.25+05:30"})", ""},
      {R"({"prompt": "p", "run_after": "2030-01-31"})", ""},
      {R"({"prompt": "p", "run_after": "2030-02-30"})", "ISO 8601"},
      {R"({"prompt": "p", "run_after": "tomorrow"})", "ISO 8601"},
      {R"({"prompt": "p", "run_after": "2030-01-31T25:00:00Z"})", "ISO 8601"},
      {R"({"prompt": "p", "batch": "spring"})", ""},
      {R"({"prompt": "p", "batch": ""})", "batch must be 1 to 200"},
      {R"({"prompt": "p", "max_attempts": 100})", ""},
      {R"({"prompt": "p", "max_attempts": 0})", "max_attempts must be between 1 and 100"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.line);
    auto error = json_error(c.line);
    if (std::string(c.expected).empty()) CHECK(error == "");
    else CHECK(error.find(c.expected) != std::string::npos);
  }
}

TEST_CASE("prompt length counts characters, not bytes") {
  std::string emoji_2500;
  for (int i = 0; i < 2500; ++i) emoji_2500 += "🐱";  // 10000 bytes
  CHECK(json_error("{\"prompt\": \"" + emoji_2500 + "\"}") == "");
  CHECK(json_error("{\"prompt\": \"" + emoji_2500 + "x\"}").find("2501 characters") != std::string::npos);
}

TEST_CASE("invalid UTF-8 in a CSV prompt is refused") {
  auto read = read_all(Format::csv, "prompt\nab\xC3\x28\n\xED\xA0\x80\nok\n");
  REQUIRE(read.records.size() == 3);
  Job job;
  CHECK(validate(read.records[0], job).find("UTF-8") != std::string::npos);
  CHECK(validate(read.records[1], job).find("UTF-8") != std::string::npos);  // a surrogate
  CHECK(validate(read.records[2], job) == "");
}

TEST_CASE("COPY rows escape backslash, tab and newlines, and write NULL as \\N") {
  Job job;
  job.prompt = "tab\there\nnew \\ back\rcr";
  job.options = R"({"a": "x\"y\\z"})";
  std::string out;
  append_copy_row(out, job, {Column::prompt, Column::version, Column::options, Column::batch},
                  std::nullopt);
  // Every backslash of the JSON text is doubled, including those of its own escapes.
  CHECK(out == std::string(R"(tab\there\nnew \\ back\rcr)") + "\t" + R"(\N)" + "\t" +
                   R"({"a": "x\\"y\\\\z"})" + "\t" + R"(\N)" + "\n");
  out.clear();
  append_copy_row(out, job, {Column::batch, Column::duration}, std::string("b1"));
  CHECK(out == "b1\t5\n");
}

TEST_CASE("a load lists only the columns the input sets, widening the COPY when needed") {
  FakeSink sink;
  LoadOptions options;
  options.batch = "spring";
  auto result = load_text(Format::jsonl,
                          "{\"prompt\": \"a\"}\n"
                          "{\"prompt\": \"b\"}\n"
                          "{\"prompt\": \"c\", \"mode\": \"professional\", \"duration\": 10}\n"
                          "{\"prompt\": \"d\"}\n",
                          &sink, options);
  CHECK(result.loaded == 4);
  CHECK(result.credits == 100 + 100 + 500 + 100);
  CHECK(sink.committed);
  REQUIRE(sink.copies.size() == 2);
  CHECK(sink.copies[0] == std::vector<Column>{Column::prompt, Column::batch});
  CHECK(sink.copies[1] == std::vector<Column>{Column::prompt, Column::duration, Column::mode, Column::batch});
  // Row d lacks duration and mode: it carries klingq's copy of the defaults.
  CHECK(sink.data == "a\tspring\nb\tspring\nc\t10\tprofessional\tspring\nd\t5\tstandard\tspring\n");
}

TEST_CASE("skip mode loads the good lines and reports the bad ones by number") {
  FakeSink sink;
  std::vector<LineError> seen;
  LoadOptions options;
  options.on_bad_line = [&](const LineError& e) { seen.push_back(e); };
  auto result = load_text(Format::csv, "prompt,duration\na,5\nb,7\n\"c\nd\",4\ne,10\n", &sink, options);
  CHECK(result.records == 4);
  CHECK(result.valid == 2);
  CHECK(result.bad == 2);
  CHECK(result.loaded == 2);
  CHECK(result.refused == "");
  CHECK(sink.committed);
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].line == 3);
  CHECK(seen[1].line == 4);
  CHECK(result.errors.size() == 2);
}

TEST_CASE("abort mode rolls back on any bad line but still validates the rest") {
  FakeSink sink;
  LoadOptions options;
  options.on_error = OnError::abort;
  auto result = load_text(Format::jsonl, "{\"prompt\": \"a\"}\n{\"prompt\": \"\"}\n{\"prompt\": \"b\", \"mode\": \"x\"}\n",
                          &sink, options);
  CHECK(result.loaded == 0);
  CHECK(result.bad == 2);
  CHECK(result.refused.find("nothing was loaded") != std::string::npos);
  CHECK(sink.rolled_back);
  CHECK_FALSE(sink.committed);
}

TEST_CASE("a dry run validates and estimates without a sink") {
  auto result = load_text(Format::jsonl,
                          "{\"prompt\": \"a\", \"mode\": \"professional\"}\n{\"prompt\": \"b\", \"duration\": 10}\n",
                          nullptr);
  CHECK(result.valid == 2);
  CHECK(result.loaded == 0);
  CHECK(result.credits == 300 + 200);
}

TEST_CASE("progress is reported every progress_every records") {
  std::string text;
  for (int i = 0; i < 25; ++i) text += "{\"prompt\": \"p" + std::to_string(i) + "\"}\n";
  LoadOptions options;
  options.progress_every = 10;
  std::vector<std::size_t> reports;
  options.on_progress = [&](const LoadProgress& p) { reports.push_back(p.records); };
  load_text(Format::jsonl, text, nullptr, options);
  CHECK(reports == std::vector<std::size_t>{10, 20});
}

TEST_CASE("a server error's COPY row maps back to the input line") {
  CHECK(copy_row_of("ERROR:  bad\nCONTEXT:  COPY jobs, line 12, column run_after: \"x\"") == 12);
  CHECK(copy_row_of("ERROR: no context") == 0);
}

TEST_CASE("formats come from names and extensions") {
  CHECK(format_from_path("a/b.csv") == Format::csv);
  CHECK(format_from_path("x.jsonl") == Format::jsonl);
  CHECK(format_from_path("x.ndjson") == Format::jsonl);
  CHECK_FALSE(format_from_path("dir.csv/file").has_value());
  CHECK_FALSE(format_from_path("-").has_value());
  CHECK(format_from_name("csv") == Format::csv);
  CHECK_FALSE(format_from_name("xml").has_value());
}

// jsonb stores numbers as PostgreSQL numeric: at most 131072 digits before the decimal
// point and 16383 after, counted from the spelling (tests/integration/cli_test.cpp checks
// these boundaries against a real server). A number past them aborted the whole COPY.
TEST_CASE("options numbers jsonb cannot store are refused, naming options and the number") {
  struct Case {
    const char* number;
    bool storable;
  };
  const Case cases[] = {
      {"1e400", true},           {"1e131071", true},     {"1e131072", false},  {"-1e131072", false},
      {"0.1e131072", true},      {"12e131070", true},    {"12e131071", false}, {"1e-16383", true},
      {"1e-16384", false},       {"10e-16384", false},   {"1e-20000", false},  {"1.5e-16382", true},
      {"1.5e-16383", false},     {"0e200000", true},     {"0e-16384", false},  {"0e2147483647", false},
      {"123456789012345678901234567890", true},
      {"-0.000e-16380", true},   {"1E+5", true},
  };
  for (const auto& c : cases) {
    CAPTURE(c.number);
    const std::string line = std::string(R"({"prompt": "p", "options": {"camera": [1, {"zoom": )") + c.number + "}]}}";
    Job job;
    auto error = json_error(line, &job);
    if (c.storable) {
      CHECK(error == "");
      CHECK(job.options == std::string(R"({"camera": [1, {"zoom": )") + c.number + "}]}");
    } else {
      CHECK(error.find("options holds the number") != std::string::npos);
      CHECK(error.find(std::string(c.number).substr(0, 20)) != std::string::npos);
      CHECK(error.find("PostgreSQL jsonb cannot store") != std::string::npos);
    }
  }
  // Past what Boost.JSON parses: refused as JSON, which jsonb refuses too.
  CHECK(json_error(R"({"prompt": "p", "options": {"a": 1e99999999999999999999}})") != "");
  // The same text inside a string is only text.
  CHECK(json_error(R"({"prompt": "p", "options": {"note": "1e-20000"}})") == "");
  // Options given as a JSON string, and CSV cells, go through the same check.
  CHECK(json_error(R"({"prompt": "p", "options": "{\"a\": 1e-20000}"})").find("1e-20000") != std::string::npos);
  auto read = read_all(Format::csv, "prompt,options\np,\"{\"\"a\"\": 1e-20000}\"\n");
  REQUIRE(read.records.size() == 1);
  Job job;
  CHECK(validate(read.records[0], job).find("options holds the number \"1e-20000\"") != std::string::npos);
}

TEST_CASE("JSONL keeps the input's spelling of options: huge integers and exponents byte-exact") {
  Job job;
  const std::string options = R"({"seed":123456789012345678901234567890, "tiny": -1.50e-300,)"
                              R"( "big" : 1E400, "list": [ 18446744073709551617 ,0.1], "s": "\"}]"})";
  REQUIRE(json_error(R"({"options": )" + options + R"(, "prompt": "p"})", &job) == "");
  CHECK(job.options == options);
  // Escaped keys are decoded and keep the value's spelling.
  REQUIRE(json_error(R"({"prompt": "p", "opt\u0069ons": {"a": 20000000000000000000001}})", &job) == "");
  CHECK(job.options == R"({"a": 20000000000000000000001})");
  // Issue 18: a repeated key (here spelled once escaped) is refused; it used to be
  // accepted with the last one winning.
  CHECK(json_error(R"({"prompt": "p", "opt\u0069ons": {"a": 1}, "options": {"a": 20000000000000000000001}})") ==
        "key \"options\" appears twice");
  // Numbers of other columns keep their spelling in messages.
  CHECK(json_error(R"({"prompt": "p", "priority": 1e400})").find("\"1e400\"") != std::string::npos);
}

TEST_CASE("a load skips the line whose options jsonb cannot store and sends the others") {
  FakeSink sink;
  std::vector<LineError> seen;
  LoadOptions options;
  options.on_bad_line = [&](const LineError& e) { seen.push_back(e); };
  auto result = load_text(Format::jsonl,
                          "{\"prompt\": \"a\", \"options\": {\"n\": 1e400}}\n"
                          "{\"prompt\": \"b\", \"options\": {\"n\": 1e-20000}}\n"
                          "{\"prompt\": \"c\", \"options\": {\"n\": 123456789012345678901234567890}}\n",
                          &sink, options);
  CHECK(result.valid == 2);
  CHECK(result.bad == 1);
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].line == 2);
  CHECK(seen[0].message.find("options holds the number \"1e-20000\"") != std::string::npos);
  CHECK(sink.committed);
  CHECK(sink.data.find("1e400") != std::string::npos);
  CHECK(sink.data.find("123456789012345678901234567890") != std::string::npos);
  CHECK(sink.data.find("1e-20000") == std::string::npos);
}
