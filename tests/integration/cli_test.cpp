// The real `klingq` binary against a migrated throwaway database: bulk loads in both
// formats and error modes, exit codes, byte-exact round trips, and every operator
// command with --json parsed back.
#include "loader/job.hpp"
#include "loader/validate.hpp"
#include "support/cli.hpp"
#include "support/pg_cluster.hpp"
#include "support/process.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

using klingq::testing::PgCluster;
using klingq::testing::Cli;
using klingq::testing::klingq_cli;
using klingq::testing::Scratch;

namespace {

std::int64_t count(pqxx::connection& connection, const std::string& sql) {
  pqxx::read_transaction tx(connection);
  return tx.exec1(sql)[0].as<std::int64_t>();
}

std::vector<std::string> prompts(pqxx::connection& connection) {
  pqxx::read_transaction tx(connection);
  std::vector<std::string> out;
  for (const auto& row : tx.exec("SELECT prompt FROM klingq.jobs ORDER BY id")) out.push_back(row[0].c_str());
  return out;
}

// A CSV field, quoted RFC 4180 style.
std::string csv_quote(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += "\"\"";
    else out += c;
  }
  return out + "\"";
}

std::string json_quote(const std::string& text) { return boost::json::serialize(boost::json::value(text)); }

// Prompts that break naive loaders.
const std::vector<std::string> tricky_prompts = {
    "a cat surfing at dawn",
    "🐱🏄‍♀️ 猫がサーフィン — café naïve",
    "'); DROP TABLE klingq.jobs; --",
    "tab\there, comma, and \"quotes\"",
    "back\\slash \\N \\t not escapes",
    "two\nlines",
    "crlf\r\ninside",
    "  leading and trailing spaces  ",
};

struct NotifyCounter : pqxx::notification_receiver {
  int count = 0;
  explicit NotifyCounter(pqxx::connection& c) : pqxx::notification_receiver(c, "klingq_jobs") {}
  void operator()(const std::string&, int) override { ++count; }
};

// Waits (bounded) for notifications; returns how many arrived.
int await_notifications(pqxx::connection& connection, NotifyCounter& counter, int at_least) {
  for (int i = 0; i < 50 && counter.count < at_least; ++i) connection.await_notification(0, 100000);
  return counter.count;
}

}  // namespace

TEST_CASE("submit CSV: byte-exact prompts, columns, batch label, one transaction, one NOTIFY") {
  auto url = PgCluster::shared().migrated_database();
  pqxx::connection listener(url);
  NotifyCounter notifications(listener);
  Scratch scratch;
  std::string csv = "prompt,duration,aspect_ratio,version,mode,options,priority,run_after,max_attempts\r\n";
  for (const auto& prompt : tricky_prompts) {
    csv += csv_quote(prompt) + ",10,9:16,2.1-master,professional,\"{\"\"camera\"\": {\"\"zoom\"\": 1.5}}\",7,"
           "2030-01-31T12:00:00Z,3\r\n";
  }
  auto path = scratch.file("jobs.csv", csv);
  auto result = klingq_cli(url, {"--json", "submit", "--batch", "spring 🌸", path});
  INFO(result.err);
  REQUIRE(result.code == 0);
  auto json = result.json().as_object();
  CHECK(json.at("loaded").as_int64() == static_cast<std::int64_t>(tricky_prompts.size()));
  CHECK(json.at("bad").as_int64() == 0);
  CHECK(json.at("credits").as_int64() == 500 * static_cast<std::int64_t>(tricky_prompts.size()));

  pqxx::connection connection(url);
  CHECK(prompts(connection) == tricky_prompts);
  pqxx::read_transaction tx(connection);
  auto row = tx.exec1(
      "SELECT min(duration), min(aspect_ratio), min(version), min(mode), min(options::text), "
      "min(priority), min(run_after) = '2030-01-31T12:00:00Z', min(max_attempts), "
      "min(batch), count(DISTINCT batch), min(state::text) FROM klingq.jobs");
  CHECK(row[0].as<int>() == 10);
  CHECK(row[1].as<std::string>() == "9:16");
  CHECK(row[2].as<std::string>() == "2.1-master");
  CHECK(row[3].as<std::string>() == "professional");
  CHECK(row[4].as<std::string>() == "{\"camera\": {\"zoom\": 1.5}}");
  CHECK(row[5].as<int>() == 7);
  CHECK(row[6].as<bool>());
  CHECK(row[7].as<int>() == 3);
  CHECK(row[8].as<std::string>() == "spring 🌸");
  CHECK(row[9].as<int>() == 1);
  CHECK(row[10].as<std::string>() == "queued");
  CHECK(await_notifications(listener, notifications, 1) == 1);
}

TEST_CASE("submit JSONL: byte-exact round trip over chunk boundaries, defaults from the table") {
  auto url = PgCluster::shared().migrated_database();
  Scratch scratch;
  std::string jsonl;
  std::vector<std::string> expected;
  // ~3 MiB: several 1 MiB read chunks, so lines straddle chunk boundaries.
  for (int i = 0; i < 3000; ++i) {
    std::string prompt = tricky_prompts[i % tricky_prompts.size()] + " #" + std::to_string(i) + " " +
                         std::string(900, 'x');
    expected.push_back(prompt);
    // Rows alternately set and omit mode: the loader widens its COPY and fills defaults.
    jsonl += "{\"prompt\": " + json_quote(prompt) + (i % 2 ? ", \"mode\": \"professional\"" : "") + "}\n";
  }
  auto path = scratch.file("big.jsonl", jsonl);
  auto result = klingq_cli(url, {"submit", path});
  INFO(result.err);
  REQUIRE(result.code == 0);
  CHECK(result.out.find("loaded 3000 jobs") != std::string::npos);
  pqxx::connection connection(url);
  CHECK(prompts(connection) == expected);
  CHECK(count(connection, "SELECT count(*) FROM klingq.jobs WHERE mode = 'professional'") == 1500);
  CHECK(count(connection, "SELECT count(*) FROM klingq.jobs WHERE duration = 5 AND aspect_ratio = '16:9' "
                          "AND version IS NULL AND options = '{}' AND max_attempts = 8 AND batch IS NULL "
                          "AND run_after <= now()") == 3000);
}

TEST_CASE("klingq's copy of the column defaults agrees with the schema") {
  auto url = PgCluster::shared().migrated_database();
  pqxx::connection connection(url);
  pqxx::read_transaction tx(connection);
  std::map<std::string, std::string> defaults;
  for (const auto& row : tx.exec("SELECT column_name, column_default FROM information_schema.columns "
                                 "WHERE table_schema = 'klingq' AND table_name = 'jobs'")) {
    defaults[row[0].c_str()] = row[1].is_null() ? "" : row[1].c_str();
  }
  namespace d = klingq::loader::defaults;
  CHECK(defaults["duration"] == std::to_string(d::duration));
  CHECK(defaults["aspect_ratio"] == "'" + std::string(d::aspect_ratio) + "'::text");
  CHECK(defaults["mode"] == "'" + std::string(d::mode) + "'::text");
  CHECK(defaults["options"] == "'" + std::string(d::options) + "'::jsonb");
  CHECK(defaults["priority"] == std::to_string(d::priority));
  CHECK(defaults["run_after"] == "now()");
  CHECK(defaults["max_attempts"] == std::to_string(d::max_attempts));
  CHECK(defaults["version"] == "");
  CHECK(defaults["batch"] == "");
}

TEST_CASE("submit --on-error skip loads the good lines, names the bad ones and exits 1") {
  auto url = PgCluster::shared().migrated_database();
  Scratch scratch;
  auto path = scratch.file("mixed.jsonl",
                           "{\"prompt\": \"good one\"}\n"
                           "{\"prompt\": \"bad duration\", \"duration\": 7}\n"
                           "\n"
                           "{\"prompt\": \"unknown\", \"colour\": \"red\"}\n"
                           "{not json\n"
                           "{\"prompt\": \"good two\", \"duration\": 10}\n");
  auto result = klingq_cli(url, {"submit", "--json", path});
  CHECK(result.code == 1);
  auto json = result.json().as_object();
  CHECK(json.at("loaded").as_int64() == 2);
  CHECK(json.at("bad").as_int64() == 3);
  auto errors = json.at("errors").as_array();
  REQUIRE(errors.size() == 3);
  CHECK(errors[0].at("line").as_int64() == 2);
  CHECK(errors[1].at("line").as_int64() == 4);
  CHECK(errors[2].at("line").as_int64() == 5);
  CHECK(result.err.find("line 2: duration must be 5 or 10") != std::string::npos);
  CHECK(result.err.find("line 4: unknown key \"colour\"") != std::string::npos);
  pqxx::connection connection(url);
  CHECK(prompts(connection) == std::vector<std::string>{"good one", "good two"});
}

// The loader's rule for options numbers (lib/loader/validate.cpp) restates PostgreSQL's
// numeric limits; here the real server judges the same numbers, and a load with one
// number jsonb cannot store skips that line only and keeps the others' digits.
TEST_CASE("submit: options numbers - the loader agrees with jsonb, skips what it refuses, keeps digits") {
  auto url = PgCluster::shared().migrated_database();
  pqxx::connection connection(url);
  const char* numbers[] = {"1e400", "1e131071", "1e131072", "-1e131072", "0.1e131072", "12e131071",
                           "1e-16383", "1e-16384", "10e-16384", "1e-20000", "1.5e-16382", "1.5e-16383",
                           "0e200000", "0e-16384", "0e2147483647", "-0.000e-16380",
                           "123456789012345678901234567890"};
  for (const char* number : numbers) {
    CAPTURE(number);
    const std::string options = std::string("{\"n\": ") + number + "}";
    bool server_accepts = true;
    try {
      pqxx::work tx(connection);
      tx.exec_params("SELECT $1::jsonb", options);
    } catch (const pqxx::sql_error&) {
      server_accepts = false;
    }
    klingq::loader::RawRecord record;
    record[klingq::loader::Column::prompt] = {klingq::loader::ValueKind::text, "p"};
    record[klingq::loader::Column::options] = {klingq::loader::ValueKind::text, options};
    klingq::loader::Job job;
    CHECK(klingq::loader::validate(record, job).empty() == server_accepts);
  }
  Scratch scratch;
  auto path = scratch.file("numbers.jsonl",
                           "{\"prompt\": \"big\", \"options\": {\"seed\": 123456789012345678901234567890}}\n"
                           "{\"prompt\": \"tiny\", \"options\": {\"n\": 1e-20000}}\n"
                           "{\"prompt\": \"huge\", \"options\": {\"n\": 1e400}}\n");
  auto result = klingq_cli(url, {"submit", path});
  INFO(result.err);
  CHECK(result.code == 1);
  CHECK(result.err.find("line 2: options holds the number \"1e-20000\"") != std::string::npos);
  CHECK(prompts(connection) == std::vector<std::string>{"big", "huge"});
  CHECK(count(connection, "SELECT count(*) FROM klingq.jobs WHERE options->>'seed' = '123456789012345678901234567890'") == 1);
  CHECK(count(connection, "SELECT count(*) FROM klingq.jobs WHERE (options->>'n')::numeric = 1e400") == 1);
}

TEST_CASE("submit --on-error abort loads nothing when a line is bad and exits 4") {
  auto url = PgCluster::shared().migrated_database();
  Scratch scratch;
  auto path = scratch.file("abort.csv", "prompt,mode\nfine,standard\n\"fine too\",\nbad,ultra\n");
  auto result = klingq_cli(url, {"submit", "--on-error", "abort", path});
  CHECK(result.code == 4);
  CHECK(result.err.find("line 4: mode must be one of") != std::string::npos);
  CHECK(result.err.find("nothing was loaded") != std::string::npos);
  pqxx::connection connection(url);
  CHECK(count(connection, "SELECT count(*) FROM klingq.jobs") == 0);
  // The same file in skip mode loads the two good rows.
  CHECK(klingq_cli(url, {"submit", path}).code == 1);
  CHECK(count(connection, "SELECT count(*) FROM klingq.jobs") == 2);
}

TEST_CASE("a header naming an unknown column refuses the whole load with exit 4") {
  auto url = PgCluster::shared().migrated_database();
  Scratch scratch;
  auto path = scratch.file("unknown.csv", "prompt,colour\na,red\n");
  auto result = klingq_cli(url, {"submit", path});
  CHECK(result.code == 4);
  CHECK(result.err.find("unknown column \"colour\"") != std::string::npos);
  pqxx::connection connection(url);
  CHECK(count(connection, "SELECT count(*) FROM klingq.jobs") == 0);
}

TEST_CASE("submit --dry-run prints the count and credit estimate and inserts nothing") {
  auto url = PgCluster::shared().migrated_database();
  Scratch scratch;
  auto path = scratch.file("dry.jsonl",
                           "{\"prompt\": \"a\"}\n"
                           "{\"prompt\": \"b\", \"duration\": 10}\n"
                           "{\"prompt\": \"c\", \"mode\": \"professional\"}\n"
                           "{\"prompt\": \"d\", \"mode\": \"professional\", \"duration\": 10}\n");
  auto text = klingq_cli(url, {"submit", "--dry-run", path});
  CHECK(text.code == 0);
  CHECK(text.out.find("4 valid jobs") != std::string::npos);
  CHECK(text.out.find("1100 credits") != std::string::npos);
  auto json = klingq_cli(url, {"submit", "--dry-run", "--json", path});
  CHECK(json.code == 0);
  CHECK(json.json().at("credits").as_int64() == 100 + 200 + 300 + 500);
  CHECK(json.json().at("dry_run").as_bool());
  pqxx::connection connection(url);
  CHECK(count(connection, "SELECT count(*) FROM klingq.jobs") == 0);
  // A dry run needs no database at all.
  auto offline = klingq::testing::run({KLINGQ_CLI_BINARY, "submit", "--dry-run", path}, {});
  CHECK(offline.exit_code == 0);
}

TEST_CASE("submit reads stdin with - and --format") {
  auto url = PgCluster::shared().migrated_database();
  Scratch scratch;
  auto path = scratch.file("in.txt", "prompt\nfrom stdin 🐱\n");
  auto result = klingq::testing::run(
      {"/bin/sh", "-c", std::string(KLINGQ_CLI_BINARY) + " submit --format csv - < " + path},
      {{"KLINGQ_DATABASE_URL", url}});
  CHECK(result.exit_code == 0);
  pqxx::connection connection(url);
  CHECK(prompts(connection) == std::vector<std::string>{"from stdin 🐱"});
  // Without --format, '-' has no extension to go by.
  CHECK(klingq_cli(url, {"submit", "-"}).code == 2);
}

TEST_CASE("exit codes: usage 2, unreachable database 3, and --help on every command") {
  auto url = PgCluster::shared().migrated_database();
  CHECK(klingq_cli(url, {}).code == 2);
  CHECK(klingq_cli(url, {"frobnicate"}).code == 2);
  CHECK(klingq_cli(url, {"status", "--bogus"}).code == 2);
  CHECK(klingq_cli(url, {"submit"}).code == 2);
  CHECK(klingq_cli(url, {"submit", "--format", "xml", "x.xml"}).code == 2);
  CHECK(klingq_cli(url, {"jobs", "--state", "exploded"}).code == 2);
  CHECK(klingq_cli(url, {"jobs", "--limit", "0"}).code == 2);
  CHECK(klingq_cli(url, {"cancel"}).code == 2);
  CHECK(klingq_cli(url, {"cancel", "abc"}).code == 2);
  CHECK(klingq_cli(url, {"retry"}).code == 2);
  Scratch scratch;
  auto unreachable = "postgresql://postgres@/nope?host=" + scratch.dir.string();
  CHECK(klingq_cli(unreachable, {"status"}).code == 3);
  auto path = scratch.file("x.csv", "prompt\na\n");
  CHECK(klingq_cli(unreachable, {"submit", path}).code == 3);
  CHECK(klingq_cli(url, {"--help"}).code == 0);
  for (const char* command : {"migrate", "submit", "status", "jobs", "cancel", "retry", "pause",
                              "resume", "limits", "estimate"}) {
    CAPTURE(command);
    auto help = klingq_cli(url, {command, "--help"});
    CHECK(help.code == 0);
    CHECK(help.out.find(std::string("usage: klingq ") + command) != std::string::npos);
    CHECK(help.out.find("exit codes") != std::string::npos);
  }
  auto migrate = klingq_cli(url, {"migrate", "--json"});
  CHECK(migrate.code == 0);
  CHECK(migrate.json().at("applied").as_array().empty());
}

namespace {
// One job in each state, through the same transitions the daemon makes, so that
// job_events has rows. Returns ids by state.
std::map<std::string, std::int64_t> jobs_in_every_state(pqxx::connection& connection) {
  pqxx::work tx(connection);
  std::map<std::string, std::int64_t> ids;
  auto insert = [&](const std::string& name, const std::string& batch) {
    ids[name] = tx.exec_params1("INSERT INTO klingq.jobs (prompt, batch, mode, duration) "
                                "VALUES ($1, $2, 'professional', 10) RETURNING id",
                                "prompt of " + name, batch)[0].as<std::int64_t>();
    return ids[name];
  };
  insert("queued", "b1");
  auto dispatching = insert("dispatching", "b1");
  tx.exec_params("UPDATE klingq.jobs SET state = 'dispatching', lease_owner = 'host-1', "
                 "lease_expires_at = now() + interval '1 minute' WHERE id = $1", dispatching);
  auto expired = insert("expired", "b1");
  tx.exec_params("UPDATE klingq.jobs SET state = 'dispatching', lease_owner = 'host-gone', "
                 "lease_expires_at = now() - interval '1 minute' WHERE id = $1", expired);
  auto submitted = insert("submitted", "b1");
  tx.exec_params("UPDATE klingq.jobs SET state = 'submitted', remote_id = 'r-sub', credit_cost = 500, "
                 "submitted_at = now(), attempts = 1 WHERE id = $1", submitted);
  auto completed = insert("completed", "b2");
  tx.exec_params("UPDATE klingq.jobs SET state = 'submitted', remote_id = 'r-done', credit_cost = 500, "
                 "submitted_at = now() - interval '2 minutes', attempts = 1 WHERE id = $1", completed);
  tx.exec_params("UPDATE klingq.jobs SET state = 'completed', completed_at = now(), "
                 "url = 'https://cdn/x.mp4' WHERE id = $1", completed);
  auto failed = insert("failed", "b2");
  tx.exec_params(
      "UPDATE klingq.jobs SET state = 'failed', attempts = 2, remote_id = 'r-fail', "
      "last_error = '{\"last\": {\"class\": \"remote_failed\", \"status\": 200, \"code\": null, "
      "\"message\": \"generation failed\", \"at\": \"2030-01-01T00:00:00Z\", \"attempt\": 2}, "
      "\"history\": [{\"class\": \"transient\", \"status\": 500, \"message\": \"oops\", \"attempt\": 1}]}' "
      "WHERE id = $1", failed);
  auto cancelled = insert("cancelled", "b2");
  tx.exec_params("UPDATE klingq.jobs SET state = 'cancelled' WHERE id = $1", cancelled);
  tx.commit();
  return ids;
}
}  // namespace

TEST_CASE("status and jobs report every state, by batch, with --json") {
  auto url = PgCluster::shared().migrated_database();
  pqxx::connection connection(url);
  auto ids = jobs_in_every_state(connection);
  auto status = klingq_cli(url, {"status", "--json"});
  REQUIRE(status.code == 0);
  auto json = status.json().as_object();
  auto states = json.at("states").as_object();
  CHECK(states.at("queued").as_int64() == 1);
  CHECK(states.at("dispatching").as_int64() == 2);
  CHECK(states.at("submitted").as_int64() == 1);
  CHECK(states.at("completed").as_int64() == 1);
  CHECK(states.at("failed").as_int64() == 1);
  CHECK(states.at("cancelled").as_int64() == 1);
  CHECK(json.at("total").as_int64() == 7);
  CHECK(json.at("credits_spent").as_int64() == 1000);
  CHECK(json.at("oldest_queued_seconds").as_double() >= 0);
  CHECK(json.at("batches").as_array().size() == 2);
  auto b2 = klingq_cli(url, {"status", "--batch", "b2", "--json"}).json().as_object();
  CHECK(b2.at("total").as_int64() == 3);
  CHECK(b2.at("states").at("queued").as_int64() == 0);
  auto text = klingq_cli(url, {"status"});
  CHECK(text.code == 0);
  CHECK(text.out.find("credits spent: 1000") != std::string::npos);

  auto failed = klingq_cli(url, {"jobs", "--state", "failed", "--json"});
  REQUIRE(failed.code == 0);
  auto jobs = failed.json().at("jobs").as_array();
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0].at("id").as_int64() == ids["failed"]);
  CHECK(jobs[0].at("error_class").as_string() == "remote_failed");
  CHECK(jobs[0].at("error_message").as_string() == "generation failed");
  CHECK(jobs[0].at("attempts").as_int64() == 2);
  CHECK(klingq_cli(url, {"jobs", "--batch", "b1", "--json"}).json().at("jobs").as_array().size() == 4);
  CHECK(klingq_cli(url, {"jobs", "--limit", "2", "--json"}).json().at("jobs").as_array().size() == 2);
  auto table = klingq_cli(url, {"jobs"});
  CHECK(table.code == 0);
  CHECK(table.out.find("remote_failed: generation failed") != std::string::npos);
  CHECK(table.out.find("r-sub") != std::string::npos);
}

TEST_CASE("cancel takes queued and lease-expired jobs, refuses submitted ones") {
  auto url = PgCluster::shared().migrated_database();
  pqxx::connection connection(url);
  auto ids = jobs_in_every_state(connection);
  auto result = klingq_cli(url, {"cancel", "--json", std::to_string(ids["queued"]),
                                 std::to_string(ids["expired"]), std::to_string(ids["submitted"]),
                                 std::to_string(ids["dispatching"]), "999999"});
  CHECK(result.code == 1);
  auto json = result.json().as_object();
  CHECK(json.at("count").as_int64() == 2);
  auto refused = json.at("refused").as_array();
  REQUIRE(refused.size() == 3);
  CHECK(result.err.find("job " + std::to_string(ids["submitted"]) +
                        " not cancelled: already accepted and charged") != std::string::npos);
  CHECK(result.err.find("999999 not cancelled: no such job") != std::string::npos);
  auto state_of = [&](std::int64_t id) {
    pqxx::read_transaction tx(connection);
    return tx.exec_params1("SELECT state::text FROM klingq.jobs WHERE id = $1", id)[0].as<std::string>();
  };
  CHECK(state_of(ids["queued"]) == "cancelled");
  CHECK(state_of(ids["expired"]) == "cancelled");
  CHECK(state_of(ids["submitted"]) == "submitted");
  CHECK(state_of(ids["dispatching"]) == "dispatching");
  CHECK(count(connection, "SELECT count(*) FROM klingq.jobs WHERE state = 'cancelled' AND lease_owner IS NOT NULL") == 0);

  // By batch: b1 now has only in-flight jobs left, which are reported, exit 1.
  {
    pqxx::work tx(connection);
    tx.exec("INSERT INTO klingq.jobs (prompt, batch) VALUES ('more', 'b1'), ('more', 'b1')");
    tx.commit();
  }
  auto by_batch = klingq_cli(url, {"cancel", "--batch", "b1", "--json"});
  CHECK(by_batch.code == 1);
  CHECK(by_batch.json().at("count").as_int64() == 2);
  CHECK(by_batch.err.find("1 submitted job not cancelled") != std::string::npos);
  // A batch of finished and queued jobs only: exit 0.
  CHECK(klingq_cli(url, {"cancel", "--batch", "b2"}).code == 0);
  CHECK(klingq_cli(url, {"cancel", "--batch", "no-such-batch"}).code == 1);
}

TEST_CASE("cancel and retry --unlabelled act on the jobs without a batch only") {
  auto url = PgCluster::shared().migrated_database();
  pqxx::connection connection(url);
  {
    pqxx::work tx(connection);
    tx.exec("INSERT INTO klingq.jobs (prompt, batch) VALUES ('loose 1', NULL), ('loose 2', NULL), ('kept', 'b1')");
    tx.exec("INSERT INTO klingq.jobs (prompt, batch, state, last_error) VALUES "
            "('loose failed', NULL, 'failed', '{\"last\": {\"class\": \"remote_failed\"}}'), "
            "('labelled failed', 'b1', 'failed', '{\"last\": {\"class\": \"remote_failed\"}}')");
    tx.commit();
  }
  CHECK(klingq_cli(url, {"cancel", "--unlabelled", "--batch", "b1"}).code == 2);
  CHECK(klingq_cli(url, {"cancel", "--unlabelled", "1"}).code == 2);
  CHECK(klingq_cli(url, {"retry", "--unlabelled", "--batch", "b1"}).code == 2);

  auto cancelled = klingq_cli(url, {"cancel", "--unlabelled", "--json", "--reason", "loose ends"});
  CHECK(cancelled.code == 0);
  CHECK(cancelled.json().at("count").as_int64() == 2);
  CHECK(count(connection, "SELECT count(*) FROM klingq.jobs WHERE batch IS NULL AND state = 'cancelled'") == 2);
  CHECK(count(connection, "SELECT count(*) FROM klingq.jobs WHERE batch = 'b1' AND state = 'queued'") == 1);
  CHECK(count(connection, "SELECT count(*) FROM klingq.operator_events WHERE reason = 'loose ends'") >= 1);

  // --failed: only the failed one of the unlabelled jobs; then all of them.
  auto failed = klingq_cli(url, {"retry", "--unlabelled", "--failed", "--json"});
  CHECK(failed.code == 0);
  CHECK(failed.json().at("count").as_int64() == 1);
  CHECK(count(connection, "SELECT count(*) FROM klingq.jobs WHERE prompt = 'labelled failed' AND state = 'failed'") == 1);
  auto all = klingq_cli(url, {"retry", "--unlabelled", "--json"});
  CHECK(all.code == 0);
  CHECK(all.json().at("count").as_int64() == 2);
  CHECK(count(connection, "SELECT count(*) FROM klingq.jobs WHERE batch IS NULL AND state = 'queued'") == 3);
  CHECK(count(connection, "SELECT count(*) FROM klingq.jobs WHERE prompt = 'labelled failed' AND state = 'failed'") == 1);
}

TEST_CASE("retry requeues failed and cancelled jobs, keeps the error history and wakes dispatchers") {
  auto url = PgCluster::shared().migrated_database();
  pqxx::connection connection(url);
  auto ids = jobs_in_every_state(connection);
  std::string old_key;
  {
    pqxx::read_transaction tx(connection);
    old_key = tx.exec_params1("SELECT idempotency_key::text FROM klingq.jobs WHERE id = $1",
                              ids["failed"])[0].as<std::string>();
  }
  pqxx::connection listener(url);
  NotifyCounter notifications(listener);
  auto result = klingq_cli(url, {"retry", "--json", std::to_string(ids["failed"]),
                                 std::to_string(ids["completed"])});
  CHECK(result.code == 1);  // the completed job is refused
  CHECK(result.json().at("count").as_int64() == 1);
  CHECK(result.err.find("it is completed") != std::string::npos);
  CHECK(await_notifications(listener, notifications, 1) == 1);
  {
    pqxx::read_transaction tx(connection);
    auto row = tx.exec_params1(
        "SELECT state::text, attempts, run_after <= now(), remote_id IS NULL, "
        "last_error ? 'last', jsonb_array_length(last_error -> 'history'), "
        "last_error -> 'history' -> 1 ->> 'message', idempotency_key::text "
        "FROM klingq.jobs WHERE id = $1", ids["failed"]);
    CHECK(row[0].as<std::string>() == "queued");
    CHECK(row[1].as<int>() == 0);
    CHECK(row[2].as<bool>());
    CHECK(row[3].as<bool>());
    CHECK_FALSE(row[4].as<bool>());
    CHECK(row[5].as<int>() == 2);
    CHECK(row[6].as<std::string>() == "generation failed");
    CHECK(row[7].as<std::string>() != old_key);  // the API had accepted it: a new key
  }
  // --batch: the cancelled job of b2; --failed: nothing left.
  auto by_batch = klingq_cli(url, {"retry", "--batch", "b2", "--json"});
  CHECK(by_batch.code == 0);
  CHECK(by_batch.json().at("retried").as_array().at(0).as_int64() == ids["cancelled"]);
  CHECK(klingq_cli(url, {"retry", "--failed", "--json"}).json().at("count").as_int64() == 0);
  CHECK(count(connection, "SELECT count(*) FROM klingq.jobs WHERE state = 'queued'") == 3);
}

TEST_CASE("pause and resume set the shared account row, and limits shows it") {
  auto url = PgCluster::shared().migrated_database();
  pqxx::connection connection(url);
  auto none = klingq_cli(url, {"limits", "--json"});
  CHECK(none.code == 0);
  CHECK(none.json().at("account").is_null());

  CHECK(klingq_cli(url, {"pause", "--reason", "budget review 🧾"}).code == 0);
  {
    pqxx::read_transaction tx(connection);
    auto row = tx.exec1("SELECT paused, paused_reason FROM klingq.account WHERE name = 'default'");
    CHECK(row[0].as<bool>());
    CHECK(row[1].as<std::string>() == "budget review 🧾");
  }
  {
    pqxx::work tx(connection);
    tx.exec("UPDATE klingq.account SET rpm_limit = 60, rpm_remaining = 42, "
            "rpm_reset_at = '2030-01-01T00:01:00Z', day_limit = 10000, day_used = 17, "
            "parallel_limit = 10, limits_source = 'headers', balance = 12345, "
            "balance_at = '2030-01-01T00:00:00Z'");
    tx.commit();
  }
  jobs_in_every_state(connection);
  auto limits = klingq_cli(url, {"limits", "--json"});
  REQUIRE(limits.code == 0);
  auto json = limits.json().as_object();
  CHECK(json.at("account").as_string() == "default");
  CHECK(json.at("limits_source").as_string() == "headers");
  CHECK(json.at("rpm").at("limit").as_int64() == 60);
  CHECK(json.at("rpm").at("remaining").as_int64() == 42);
  CHECK(json.at("rpm").at("reset_at").as_string() == "2030-01-01T00:01:00Z");
  CHECK(json.at("day").at("used").as_int64() == 17);
  CHECK(json.at("parallel").at("limit").as_int64() == 10);
  CHECK(json.at("in_flight").as_int64() == 3);  // two dispatching, one submitted
  CHECK(json.at("balance").as_int64() == 12345);
  CHECK(json.at("balance_at").as_string() == "2030-01-01T00:00:00Z");
  CHECK(json.at("paused").as_bool());
  CHECK(json.at("paused_reason").as_string() == "budget review 🧾");
  CHECK(json.at("halted_reason").is_null());
  auto text = klingq_cli(url, {"limits"});
  CHECK(text.code == 0);
  CHECK(text.out.find("12345 credits") != std::string::npos);

  CHECK(text.out.find("day: begins at limits.day_starts_at, else 00:00 UTC (assumed") != std::string::npos);
  {
    pqxx::work tx(connection);
    tx.exec("UPDATE klingq.account SET day_start_ms = 16 * 3600000");  // a provider in UTC+8
    tx.commit();
  }
  CHECK(klingq_cli(url, {"limits"}).out.find("day: begins at 16:00 UTC (learned from the API's count)") !=
        std::string::npos);
  CHECK(klingq_cli(url, {"limits", "--json"}).json().at("day").at("starts_at_ms_after_utc_midnight").as_int64() ==
        16 * 3600000);

  pqxx::connection listener(url);
  NotifyCounter notifications(listener);
  auto resumed = klingq_cli(url, {"resume", "--json"});
  CHECK(resumed.code == 0);
  CHECK_FALSE(resumed.json().at("paused").as_bool());
  CHECK(await_notifications(listener, notifications, 1) == 1);
  CHECK(count(connection, "SELECT count(*) FROM klingq.account WHERE NOT paused AND paused_reason IS NULL") == 1);
}

TEST_CASE("estimate prices the queued jobs against the known balance") {
  auto url = PgCluster::shared().migrated_database();
  pqxx::connection connection(url);
  {
    pqxx::work tx(connection);
    tx.exec("INSERT INTO klingq.jobs (prompt, mode, duration, batch) VALUES "
            "('a', 'standard', 5, 'x'), ('b', 'standard', 10, 'x'), ('c', 'professional', 5, 'y'), "
            "('d', 'professional', 10, 'y')");
    tx.exec("INSERT INTO klingq.jobs (prompt, state) VALUES ('done', 'cancelled')");
    tx.commit();
  }
  auto unknown = klingq_cli(url, {"estimate", "--json"});
  REQUIRE(unknown.code == 0);
  auto json = unknown.json().as_object();
  CHECK(json.at("jobs").as_int64() == 4);
  CHECK(json.at("credits").as_int64() == 1100);
  CHECK(json.at("balance").is_null());
  CHECK(json.at("sufficient").is_null());
  {
    pqxx::work tx(connection);
    tx.exec("INSERT INTO klingq.account (name, balance, balance_at) VALUES ('default', 1000, now())");
    tx.commit();
  }
  auto short_by = klingq_cli(url, {"estimate", "--json"}).json().as_object();
  CHECK_FALSE(short_by.at("sufficient").as_bool());
  CHECK(short_by.at("shortfall").as_int64() == 100);
  auto batch = klingq_cli(url, {"estimate", "--batch", "x", "--json"}).json().as_object();
  CHECK(batch.at("credits").as_int64() == 300);
  CHECK(batch.at("sufficient").as_bool());
  auto text = klingq_cli(url, {"estimate"});
  CHECK(text.out.find("short by 100 credits") != std::string::npos);
}

TEST_CASE("by IDs and by batch, cancel and retry change a row alike (their statements are written out twice)") {
  // lib/db/sql holds jobs_cancel_by_ids/_by_batch and jobs_retry_by_ids/_by_selection
  // each whole: this catches one of a pair drifting from the other.
  auto url = PgCluster::shared().migrated_database();
  pqxx::connection connection(url);
  std::map<std::string, std::int64_t> ids;
  {
    pqxx::work tx(connection);
    for (const char* name : {"cancel-a", "cancel-b", "retry-a", "retry-b"}) {
      ids[name] = tx.exec_params1("INSERT INTO klingq.jobs (prompt, batch) VALUES ('same', $1) RETURNING id",
                                  name)[0].as<std::int64_t>();
    }
    tx.exec("UPDATE klingq.jobs SET state = 'dispatching', lease_owner = 'host-gone', "
            "lease_expires_at = now() - interval '1 minute', wait_reason = 'why' WHERE batch LIKE 'cancel-%'");
    tx.exec("UPDATE klingq.jobs SET state = 'failed', attempts = 3, remote_id = 'r-' || id, url = 'https://cdn/x.mp4', "
            "credit_cost = 500, metadata = '{\"m\": 1}', submitted_at = now(), completed_at = now(), "
            "next_poll_at = now(), polls = 4, "
            "last_error = '{\"last\": {\"class\": \"remote_failed\", \"message\": \"no\"}, "
            "\"history\": [{\"class\": \"transient\"}]}' WHERE batch LIKE 'retry-%'");
    tx.commit();
  }
  auto key_of = [&](std::int64_t id) {
    pqxx::read_transaction tx(connection);
    return tx.exec_params1("SELECT idempotency_key::text FROM klingq.jobs WHERE id = $1", id)[0].as<std::string>();
  };
  const auto key_a = key_of(ids["retry-a"]), key_b = key_of(ids["retry-b"]);
  CHECK(klingq_cli(url, {"cancel", std::to_string(ids["cancel-a"])}).code == 0);
  CHECK(klingq_cli(url, {"cancel", "--batch", "cancel-b"}).code == 0);
  CHECK(klingq_cli(url, {"retry", std::to_string(ids["retry-a"])}).code == 0);
  CHECK(klingq_cli(url, {"retry", "--batch", "retry-b"}).code == 0);

  // Everything but what tells the rows apart or is the time of the change.
  auto row_of = [&](std::int64_t id) {
    pqxx::read_transaction tx(connection);
    return tx.exec_params1("SELECT (to_jsonb(j) - 'id' - 'batch' - 'idempotency_key' - 'run_after' - "
                           "'updated_at')::text FROM klingq.jobs j WHERE id = $1", id)[0].as<std::string>();
  };
  CHECK(row_of(ids["cancel-a"]) == row_of(ids["cancel-b"]));
  CHECK(row_of(ids["retry-a"]) == row_of(ids["retry-b"]));
  CHECK(row_of(ids["retry-a"]).find("\"state\": \"queued\"") != std::string::npos);
  // The API had accepted both: each gets a new key.
  CHECK(key_of(ids["retry-a"]) != key_a);
  CHECK(key_of(ids["retry-b"]) != key_b);
}
