// klingq show, wait, status --watch and the ETA in status and estimate, against a real
// database; and that the CLI's actions go through lib/operate and are recorded in
// klingq.operator_events like the console's.
#include "support/cli.hpp"
#include "support/pg_cluster.hpp"
#include "support/process.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include <csignal>
#include <map>
#include <regex>

using klingq::testing::PgCluster;
using namespace std::chrono_literals;

namespace {

// As the user "tester" (the name operator actions record).
klingq::testing::Cli cli(const std::string& url, std::vector<std::string> arguments) {
  return klingq::testing::klingq_cli(url, std::move(arguments), {{"USER", "tester"}});
}

void exec(pqxx::connection& c, const std::string& sql) {
  pqxx::work tx(c);
  tx.exec(sql);
  tx.commit();
}
std::string text(pqxx::connection& c, const std::string& sql) {
  pqxx::work tx(c);
  auto f = tx.exec1(sql)[0];
  auto value = f.is_null() ? std::string() : f.as<std::string>();
  tx.commit();
  return value;
}

}  // namespace

TEST_CASE("cli: show prints a job, its video and its timeline with who acted") {
  auto url = PgCluster::shared().migrated_database();
  pqxx::connection c(url);
  auto id = text(c, "INSERT INTO klingq.jobs (prompt, batch) VALUES ('a heron at dusk', 'birds') RETURNING id");
  // The CLI's cancel is an operator action: a state change and a record of who.
  auto cancel = cli(url, {"cancel", id, "--reason", "duplicate prompt"});
  CHECK(cancel.code == 0);
  CHECK(text(c, "SELECT actor || '|' || action || '|' || reason FROM klingq.operator_events WHERE job_id = " + id)
            .rfind("cli:tester@", 0) == 0);
  exec(c, "UPDATE klingq.jobs SET url = 'https://cdn.example/heron.mp4' WHERE id = " + id);

  auto shown = cli(url, {"show", id});
  REQUIRE(shown.code == 0);
  CHECK(shown.out.find("job " + id + "  cancelled  batch birds") != std::string::npos);
  CHECK(shown.out.find("video: https://cdn.example/heron.mp4") != std::string::npos);
  CHECK(shown.out.find("queued -> cancelled") != std::string::npos);
  CHECK(shown.out.find("cancel by cli:tester@") != std::string::npos);
  CHECK(shown.out.find("duplicate prompt") != std::string::npos);
  auto json = cli(url, {"show", id, "--json"}).json();
  CHECK(json.at("state") == "cancelled");
  CHECK(json.at("timeline").as_array().size() == 3);  // created, cancelled, the operator's cancel
  CHECK(cli(url, {"show", "999999"}).code == 1);
  CHECK(cli(url, {"show"}).code == 2);
  CHECK(cli(url, {"show", "x"}).code == 2);

  // pause, resume and retry are recorded too; jobs shows the URL.
  CHECK(cli(url, {"pause", "--reason", "invoice"}).code == 0);
  CHECK(cli(url, {"resume", "--reason", "paid"}).code == 0);
  CHECK(cli(url, {"retry", id}).code == 0);
  CHECK(cli(url, {"batch", "pause", "birds", "--reason", "review"}).code == 0);
  CHECK(cli(url, {"batch", "resume", "birds"}).code == 0);
  CHECK(cli(url, {"batch", "set", "birds", "--weight", "3"}).code == 0);
  CHECK(text(c, "SELECT string_agg(action || ':' || coalesce(reason, ''), ',' ORDER BY id) FROM klingq.operator_events") ==
        "cancel:duplicate prompt,pause:invoice,resume:paid,retry:,batch_pause:review,batch_resume:,batch_set:");
  exec(c, "UPDATE klingq.jobs SET state = 'completed', remote_id = 'r-h', url = 'https://cdn.example/heron.mp4' WHERE id = " + id);
  auto jobs = cli(url, {"jobs"});
  CHECK(jobs.out.find("https://cdn.example/heron.mp4") != std::string::npos);
  CHECK(cli(url, {"jobs", "--json"}).json().at("jobs").at(0).at("url") == "https://cdn.example/heron.mp4");
}

TEST_CASE("cli: wait exits 0 when a batch is done, 1 when any job failed or on timeout") {
  auto url = PgCluster::shared().migrated_database();
  pqxx::connection c(url);
  exec(c, "INSERT INTO klingq.jobs (prompt, batch, state) VALUES ('a', 'done', 'completed'), ('b', 'done', 'cancelled'),"
          "('c', 'bad', 'completed'), ('d', 'bad', 'failed'), ('e', 'open', 'queued')");
  auto done = cli(url, {"wait", "--batch", "done"});
  CHECK(done.code == 0);
  CHECK(done.out.find("batch done done: 1 completed, 0 failed, 1 cancelled") != std::string::npos);
  CHECK(cli(url, {"wait", "--batch", "bad", "--json"}).json().at("failed") == true);
  CHECK(cli(url, {"wait", "--batch", "bad"}).code == 1);
  auto timeout = cli(url, {"wait", "--batch", "open", "--timeout", "1", "--interval", "1"});
  CHECK(timeout.code == 1);
  CHECK(timeout.err.find("timed out with 1 of 1 jobs") != std::string::npos);
  auto none = cli(url, {"wait", "--batch", "nothing"});
  CHECK(none.code == 1);
  CHECK(none.err.find("no jobs in batch") != std::string::npos);
  CHECK(cli(url, {"wait"}).code == 2);

  // A batch that finishes while waiting: the waiter sees it and exits 0.
  klingq::testing::Process waiter({KLINGQ_CLI_BINARY, "wait", "--batch", "open", "--interval", "1"},
                                  {{"KLINGQ_DATABASE_URL", url}});
  exec(c, "UPDATE klingq.jobs SET state = 'completed', remote_id = 'r-e' WHERE batch = 'open'");
  CHECK(waiter.wait(20s) == std::optional<int>(0));
}

TEST_CASE("cli: status and estimate say when each batch will be done, status --watch redraws") {
  auto url = PgCluster::shared().migrated_database();
  pqxx::connection c(url);
  // Requests 60/min bind: 120 queued jobs of "slow" take 2 minutes, 30 of "fast" at a
  // higher priority go first.
  exec(c, "INSERT INTO klingq.account (name, rpm_limit, parallel_limit, day_limit, balance, balance_at) "
          "VALUES ('default', 60, 100, 100000, 1000000, now());"
          "INSERT INTO klingq.jobs (prompt, batch) SELECT 'p' || g, 'slow' FROM generate_series(1, 120) g;"
          "INSERT INTO klingq.jobs (prompt, batch, priority) SELECT 'q' || g, 'fast', 5 FROM generate_series(1, 30) g");
  auto status = cli(url, {"status", "--json"}).json();
  std::map<std::string, boost::json::value> eta;
  for (const auto& b : status.at("batches").as_array()) eta[std::string(b.at("batch").as_string())] = b.at("eta");
  CHECK(eta["slow"].at("held_by") == "rpm");
  CHECK(eta["fast"].at("held_by") == "rpm");
  CHECK(std::string(eta["slow"].at("text").as_string()).rfind("requests per minute: done ", 0) == 0);
  // fast: 30 jobs at 1/s (+ 60 s generation); slow: the 30 ahead and its own 120.
  auto at = [](const boost::json::value& v) { return std::string(v.at("done_at").as_string()); };
  CHECK(at(eta["fast"]) < at(eta["slow"]));
  auto text_status = cli(url, {"status"});
  CHECK(text_status.out.find("requests per minute: done") != std::string::npos);

  // Too little credit: the ETA says after how many jobs it runs out.
  exec(c, "UPDATE klingq.account SET balance = 5000");
  auto est = cli(url, {"estimate", "--batch", "slow", "--json"}).json();
  CHECK(est.at("eta").at("held_by") == "credits");
  CHECK(est.at("eta").at("text") == "credits run out after 20 more jobs");  // (5000 - 30 * 100) / 100
  CHECK(cli(url, {"estimate"}).out.find("eta: credits run out after 50 more jobs") != std::string::npos);

  // On a terminal each frame clears the screen; here, with --json, frames follow each other.
  klingq::testing::Process watch({KLINGQ_CLI_BINARY, "status", "--watch", "--interval", "1", "--json"},
                                 {{"KLINGQ_DATABASE_URL", url}});
  CHECK(watch.wait_for_line("\"states\"", 10s));
  exec(c, "UPDATE klingq.jobs SET state = 'cancelled' WHERE batch = 'fast'");
  // A later frame shows the change.
  const std::regex thirty_cancelled("\"cancelled\":\\s*30");
  bool redrawn = false;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!redrawn && std::chrono::steady_clock::now() < deadline) {
    watch.wait_for_line("cancelled", 1s);
    redrawn = std::regex_search(watch.stdout_text(), thirty_cancelled);
  }
  CHECK(redrawn);
  CHECK(watch.running());
  watch.signal(SIGINT);
  CHECK(watch.wait(5s));
}
