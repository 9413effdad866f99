// The schema against a real PostgreSQL: defaults, every CHECK, the enum, the claim
// index, the NOTIFY, and migrations that re-run safely.
#include "db/console.hpp"
#include "db/instances.hpp"
#include "db/migrations.hpp"
#include "support/old_schema.hpp"
#include "support/pg_cluster.hpp"

#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include <map>
#include <thread>

using klingq::testing::PgCluster;
using klingq::testing::migrate_before;

namespace {
// Runs one INSERT and returns the error message ("" when it succeeded).
std::string insert_error(pqxx::connection& connection, const std::string& values_sql) {
  try {
    pqxx::work tx(connection);
    tx.exec("INSERT INTO klingq.jobs " + values_sql);
    tx.commit();
  } catch (const pqxx::sql_error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("migrations apply once, record themselves and re-run as a no-op") {
  pqxx::connection connection(PgCluster::shared().fresh_database());
  CHECK(klingq::db::current_schema_version(connection) == 0);
  CHECK_THROWS_AS(klingq::db::require_current_schema(connection), klingq::db::SchemaTooOld);
  auto applied = klingq::db::migrate(connection);
  CHECK(applied.size() == klingq::db::embedded_migrations().size());
  CHECK(klingq::db::current_schema_version(connection) == klingq::db::required_schema_version());
  CHECK(klingq::db::migrate(connection).empty());
  klingq::db::require_current_schema(connection);
  pqxx::read_transaction tx(connection);
  CHECK(tx.exec1("SELECT count(*) FROM klingq.schema_migrations")[0].as<std::size_t>() ==
        applied.size());
}

TEST_CASE("concurrent migrators serialise on the advisory lock") {
  auto url = PgCluster::shared().fresh_database();
  std::vector<std::thread> threads;
  std::atomic<int> applied_total{0};
  std::atomic<int> failures{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      try {
        pqxx::connection connection(url);
        applied_total += static_cast<int>(klingq::db::migrate(connection).size());
      } catch (...) {
        ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  CHECK(applied_total == static_cast<int>(klingq::db::embedded_migrations().size()));
}

TEST_CASE("a prompt alone makes a queued job with the documented defaults") {
  pqxx::connection connection(PgCluster::shared().migrated_database());
  pqxx::work tx(connection);
  auto row = tx.exec1(
      "INSERT INTO klingq.jobs (prompt) VALUES ('a cat surfing at dawn') RETURNING "
      "state::text, duration, aspect_ratio, version, mode, options::text, priority, "
      "run_after <= now(), idempotency_key IS NOT NULL, attempts, max_attempts, batch");
  CHECK(row[0].as<std::string>() == "queued");
  CHECK(row[1].as<int>() == 5);
  CHECK(row[2].as<std::string>() == "16:9");
  CHECK(row[3].is_null());
  CHECK(row[4].as<std::string>() == "standard");
  CHECK(row[5].as<std::string>() == "{}");
  CHECK(row[6].as<int>() == 0);
  CHECK(row[7].as<bool>());
  CHECK(row[8].as<bool>());
  CHECK(row[9].as<int>() == 0);
  CHECK(row[10].as<int>() >= 1);
  CHECK(row[11].is_null());
  auto keys = tx.exec("INSERT INTO klingq.jobs (prompt) VALUES ('a'), ('b') RETURNING idempotency_key");
  CHECK(keys[0][0].as<std::string>() != keys[1][0].as<std::string>());
}

TEST_CASE("every CHECK rejects its bad row with a message naming the column") {
  pqxx::connection connection(PgCluster::shared().migrated_database());
  struct Case {
    const char* insert;
    const char* expected;
  };
  const Case cases[] = {
      {"(prompt) VALUES ('')", "jobs_prompt_not_blank"},
      {"(prompt) VALUES (E'  \\n\\t ')", "jobs_prompt_not_blank"},
      {"(prompt) VALUES (repeat('x', 2501))", "jobs_prompt_max_2500_chars"},
      {"(prompt) VALUES (NULL)", "\"prompt\""},
      {"(prompt, duration) VALUES ('p', 7)", "jobs_duration_5_or_10"},
      {"(prompt, aspect_ratio) VALUES ('p', '4:3')", "jobs_aspect_ratio_valid"},
      {"(prompt, version) VALUES ('p', '3.0')", "jobs_version_valid"},
      {"(prompt, mode) VALUES ('p', 'ultra')", "jobs_mode_standard_or_professional"},
      {"(prompt, options) VALUES ('p', '[1]')", "jobs_options_is_object"},
      {"(prompt, attempts) VALUES ('p', -1)", "jobs_attempts_not_negative"},
      {"(prompt, max_attempts) VALUES ('p', 0)", "jobs_max_attempts_positive"},
      {"(prompt, batch) VALUES ('p', '')", "jobs_batch_length"},
      {"(prompt, state) VALUES ('p', 'dispatching')", "jobs_dispatching_has_lease"},
      {"(prompt, state) VALUES ('p', 'submitted')", "jobs_submitted_has_remote_id"},
      {"(prompt, state) VALUES ('p', 'exploded')", "invalid input value for enum"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.insert);
    auto error = insert_error(connection, c.insert);
    CHECK(error.find(c.expected) != std::string::npos);
  }
  // Good rows of each kind pass.
  CHECK(insert_error(connection,
                     "(prompt, duration, aspect_ratio, version, mode, options, batch) VALUES "
                     "('p', 10, '1:1', '2.1-master', 'professional', "
                     "'{\"camera_control\": {\"type\": \"simple\"}}', 'b1')") == "");
  CHECK(insert_error(connection, "(prompt) VALUES (repeat('x', 2500))") == "");
  CHECK(insert_error(connection, "(prompt) VALUES ('🐱 surfing; DROP TABLE klingq.jobs; --')") == "");
}

TEST_CASE("the job_state enum has exactly the documented states") {
  pqxx::connection connection(PgCluster::shared().migrated_database());
  pqxx::read_transaction tx(connection);
  auto row = tx.exec1("SELECT array_to_string(enum_range(NULL::klingq.job_state), ',')");
  CHECK(row[0].as<std::string>() == "queued,dispatching,submitted,completed,failed,cancelled");
}

TEST_CASE("the claim-shaped query uses the partial index, not the history") {
  pqxx::connection connection(PgCluster::shared().migrated_database());
  pqxx::work tx(connection);
  tx.exec("INSERT INTO klingq.jobs (prompt, state, remote_id, completed_at) "
          "SELECT 'done ' || g, 'completed', 'r' || g, now() FROM generate_series(1, 20000) g");
  tx.exec("INSERT INTO klingq.jobs (prompt) SELECT 'todo ' || g FROM generate_series(1, 50) g");
  tx.exec("ANALYZE klingq.jobs");
  auto plan = tx.exec(
      "EXPLAIN SELECT id FROM klingq.jobs WHERE state = 'queued' AND run_after <= now() "
      "ORDER BY priority DESC, run_after, id LIMIT 10 FOR UPDATE SKIP LOCKED");
  std::string text;
  for (const auto& row : plan) text += row[0].as<std::string>() + "\n";
  CAPTURE(text);
  CHECK(text.find("jobs_claimable_idx") != std::string::npos);
  CHECK(text.find("Seq Scan") == std::string::npos);
}

TEST_CASE("state changes are recorded in job_events and updated_at moves") {
  pqxx::connection connection(PgCluster::shared().migrated_database());
  pqxx::work tx(connection);
  auto id = tx.exec1("INSERT INTO klingq.jobs (prompt) VALUES ('p') RETURNING id")[0].as<long>();
  tx.exec_params("UPDATE klingq.jobs SET state = 'cancelled' WHERE id = $1", id);
  tx.exec_params("UPDATE klingq.jobs SET priority = 3 WHERE id = $1", id);  // no state change
  auto events = tx.exec_params(
      "SELECT from_state::text, to_state::text FROM klingq.job_events WHERE job_id = $1", id);
  REQUIRE(events.size() == 1);
  CHECK(events[0][0].as<std::string>() == "queued");
  CHECK(events[0][1].as<std::string>() == "cancelled");
}

TEST_CASE("updated_at moves on an UPDATE that leaves it alone, and keeps a value an UPDATE sets") {
  pqxx::connection connection(PgCluster::shared().migrated_database());
  pqxx::work tx(connection);
  auto id = tx.exec1("INSERT INTO klingq.jobs (prompt) VALUES ('p') RETURNING id")[0].as<long>();
  auto updated_at = [&] {
    return tx.exec_params1("SELECT updated_at::text FROM klingq.jobs WHERE id = $1", id)[0].as<std::string>();
  };
  tx.exec_params("UPDATE klingq.jobs SET updated_at = '2001-02-03 04:05:06+00' WHERE id = $1", id);
  CHECK(updated_at() == "2001-02-03 04:05:06+00");  // set by the statement: kept
  tx.exec_params("UPDATE klingq.jobs SET priority = 4 WHERE id = $1", id);
  CHECK(tx.exec_params1("SELECT updated_at = now() FROM klingq.jobs WHERE id = $1", id)[0].as<bool>());
}

TEST_CASE("a job's events go with it: DELETE and TRUNCATE remove them, other jobs' stay") {
  pqxx::connection connection(PgCluster::shared().migrated_database());
  pqxx::work tx(connection);
  tx.exec("INSERT INTO klingq.jobs (prompt) SELECT 'p' || g FROM generate_series(1, 20) g");
  tx.exec("UPDATE klingq.jobs SET state = 'cancelled'");
  auto events = [&] { return tx.exec1("SELECT count(*) FROM klingq.job_events")[0].as<int>(); };
  auto orphans = [&] {
    return tx.exec1("SELECT count(*) FROM klingq.job_events e "
                    "WHERE NOT EXISTS (SELECT 1 FROM klingq.jobs j WHERE j.id = e.job_id)")[0].as<int>();
  };
  CHECK(events() == 20);
  tx.exec("DELETE FROM klingq.jobs WHERE id % 4 = 0");
  CHECK(events() == 15);
  CHECK(orphans() == 0);
  tx.exec("TRUNCATE klingq.jobs");
  CHECK(events() == 0);
}

TEST_CASE("klingq.job_counts agrees with a full count through inserts, moves, deletes, folds and truncate") {
  pqxx::connection connection(PgCluster::shared().fresh_database());
  {
    // Rows from before the migration that adds the counts are counted by it.
    klingq::db::migrate(connection);
    pqxx::work tx(connection);
    tx.exec("DELETE FROM klingq.schema_migrations WHERE version = 5");
    tx.exec("DROP TRIGGER jobs_count_inserted ON klingq.jobs");
    tx.exec("DROP TRIGGER jobs_count_deleted ON klingq.jobs");
    tx.exec("DROP TRIGGER jobs_count_truncated ON klingq.jobs");
    tx.exec("DROP FUNCTION klingq.jobs_count_inserted(), klingq.jobs_count_deleted(), klingq.jobs_count_truncated()");
    tx.exec("DROP TABLE klingq.job_counts");
    tx.exec("INSERT INTO klingq.jobs (prompt, state) SELECT 'old ' || g, 'cancelled' FROM generate_series(1, 7) g");
    tx.commit();
  }
  CHECK(klingq::db::migrate(connection) == std::vector<int>{5});
  auto agrees = [&] {
    pqxx::read_transaction tx(connection);
    auto diff = tx.exec1(R"(
      SELECT count(*) FROM (
        SELECT state, count(*)::bigint AS n FROM klingq.jobs GROUP BY state) full_count
      FULL JOIN (SELECT state, sum(n)::bigint AS n FROM klingq.job_counts GROUP BY state HAVING sum(n) <> 0) counted
      USING (state)
      WHERE full_count.n IS DISTINCT FROM counted.n)")[0].as<int>();
    return diff == 0;
  };
  CHECK(agrees());
  pqxx::work tx(connection);
  tx.exec("INSERT INTO klingq.jobs (prompt) SELECT 'p' || g FROM generate_series(1, 500) g");
  tx.exec("UPDATE klingq.jobs SET state = 'cancelled' WHERE id % 3 = 0 AND state = 'queued'");
  tx.exec("UPDATE klingq.jobs SET state = 'failed' WHERE id % 5 = 0");
  tx.exec("UPDATE klingq.jobs SET priority = 2 WHERE id % 2 = 0");  // no state change
  tx.exec("DELETE FROM klingq.jobs WHERE id % 7 = 0");
  tx.commit();
  CHECK(agrees());
  {
    pqxx::work fold(connection);
    fold.exec("WITH f AS (DELETE FROM klingq.job_counts RETURNING state, n) "
              "INSERT INTO klingq.job_counts SELECT state, sum(n) FROM f GROUP BY state");
    fold.commit();
  }
  CHECK(agrees());
  {
    pqxx::read_transaction read(connection);
    CHECK(read.exec1("SELECT count(*) FROM klingq.job_counts")[0].as<int>() <= 6);
  }
  {
    pqxx::work truncate(connection);
    truncate.exec("TRUNCATE klingq.jobs CASCADE");
    truncate.exec("INSERT INTO klingq.jobs (prompt) VALUES ('after truncate')");
    truncate.commit();
  }
  CHECK(agrees());
}

TEST_CASE("an insert of runnable rows sends one NOTIFY per statement") {
  auto url = PgCluster::shared().migrated_database();
  pqxx::connection listener(url);
  struct Receiver : pqxx::notification_receiver {
    int count = 0;
    Receiver(pqxx::connection& c) : pqxx::notification_receiver(c, "klingq_jobs") {}
    void operator()(const std::string&, int) override { ++count; }
  } receiver(listener);
  pqxx::connection writer(url);
  {
    pqxx::work tx(writer);
    tx.exec("INSERT INTO klingq.jobs (prompt) SELECT 'p' || g FROM generate_series(1, 1000) g");
    tx.commit();
  }
  // Wait (bounded) for the notification to arrive; await_notification blocks on the socket.
  for (int i = 0; i < 50 && receiver.count == 0; ++i) listener.await_notification(0, 100000);
  CHECK(receiver.count == 1);
  {
    pqxx::work tx(writer);
    tx.exec("INSERT INTO klingq.jobs (prompt, state) VALUES ('x', 'cancelled')");
    tx.commit();
  }
  {
    pqxx::work tx(writer);
    tx.exec("INSERT INTO klingq.jobs (prompt) VALUES ('y')");
    tx.commit();
  }
  // Notifications arrive in commit order: once the runnable insert's one is here, a
  // notification for the cancelled row would already have been counted.
  for (int i = 0; i < 50 && receiver.count < 2; ++i) listener.await_notification(0, 100000);
  CHECK(receiver.count == 2);
}

TEST_CASE("klingq.batch_counts and event_minutes agree with full counts through inserts, moves, relabels, costs, deletes, folds and truncate") {
  const auto url = PgCluster::shared().fresh_database();
  pqxx::connection connection(url);
  {
    // The schema as version 14 left it, with jobs and events in it: 015 counts them.
    migrate_before(connection, 15);
    pqxx::work tx(connection);
    tx.exec("INSERT INTO klingq.jobs (prompt, batch, mode, duration) "
            "SELECT 'old ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'b' || (g % 4) END, "
            "CASE WHEN g % 2 = 0 THEN 'professional' ELSE 'standard' END, CASE WHEN g % 5 = 0 THEN 10 ELSE 5 END "
            "FROM generate_series(1, 40) g");
    tx.exec("UPDATE klingq.jobs SET state = 'submitted', remote_id = 'r' || id, credit_cost = 35 WHERE id % 4 = 0");
    tx.exec("UPDATE klingq.jobs SET state = 'failed', last_error = '{\"last\": {\"class\": \"rate_limited\"}}' "
            "WHERE id % 7 = 0");
    tx.exec("UPDATE klingq.jobs SET state = 'dispatching', lease_owner = 'old', lease_expires_at = now() "
            "WHERE state = 'queued' AND id % 9 = 0");
    tx.exec("INSERT INTO klingq.batches (batch, budget) VALUES ('b1', 100000), ('b2', 500) "
            "ON CONFLICT (key) DO UPDATE SET budget = EXCLUDED.budget");
    tx.commit();
  }
  CHECK(klingq::db::migrate(connection).front() == 15);
  // Every (batch, settled state, mode, duration): count, credits and rows without a cost.
  auto table_agrees = [&] {
    pqxx::read_transaction tx(connection);
    return tx.exec1(R"(
      SELECT count(*) FROM (
        SELECT coalesce(batch, '') AS key, state, mode, duration, count(*)::bigint AS n,
               coalesce(sum(credit_cost), 0)::bigint AS credits,
               count(*) FILTER (WHERE credit_cost IS NULL)::bigint AS uncosted
        FROM klingq.jobs WHERE state IN ('queued', 'completed', 'failed', 'cancelled')
        GROUP BY 1, 2, 3, 4) full_count
      FULL JOIN (SELECT key, state, mode, duration, sum(n)::bigint AS n, sum(credits)::bigint AS credits,
                        sum(uncosted)::bigint AS uncosted
                 FROM klingq.batch_counts GROUP BY 1, 2, 3, 4
                 HAVING sum(n) <> 0 OR sum(credits) <> 0 OR sum(uncosted) <> 0) counted
      USING (key, state, mode, duration)
      WHERE (full_count.n, full_count.credits, full_count.uncosted)
            IS DISTINCT FROM (counted.n, counted.credits, counted.uncosted))")[0].as<int>() == 0;
  };
  // What the console and the claim read (with the jobs in flight, from klingq.jobs)
  // against the same figures computed from the whole table.
  const klingq::db::Prices prices{100, 200, 300, 500};
  auto readers_agree = [&] {
    pqxx::read_transaction tx(connection);
    std::map<std::string, std::string> read, full;
    for (const auto& c : klingq::db::console::batch_counts(tx, prices)) {
      read[c.batch.value_or("(none)") + "/" + c.state] =
          std::to_string(c.jobs) + " " + std::to_string(c.credits) + " " + std::to_string(c.queued_cost) + " " +
          (c.queued_priority ? std::to_string(*c.queued_priority) : "-");
    }
    for (const auto& r : tx.exec(R"(
        SELECT coalesce(batch, '(none)') || '/' || state, count(*) || ' ' || coalesce(sum(credit_cost), 0) || ' ' ||
               CASE WHEN state = 'queued' THEN sum(klingq.expected_cost(mode, duration, 100, 200, 300, 500)) ELSE 0 END
               || ' ' || coalesce((max(priority) FILTER (WHERE state = 'queued'))::text, '-')
        FROM klingq.jobs GROUP BY batch, state)")) {
      full[r[0].as<std::string>()] = r[1].as<std::string>();
    }
    CHECK(read == full);
    std::map<std::string, long long> left, expected;
    for (const auto& [batch, credits] : klingq::db::batches::budgets_remaining(tx, prices)) left[batch] = credits;
    for (const auto& r : tx.exec(R"(
        SELECT b.batch, b.budget - coalesce((SELECT sum(coalesce(j.credit_cost, klingq.expected_cost(j.mode, j.duration, 100, 200, 300, 500)))
                                             FROM klingq.jobs j WHERE j.batch = b.batch
                                               AND j.state IN ('dispatching', 'submitted', 'completed')), 0)
        FROM klingq.batches b WHERE b.budget IS NOT NULL)")) {
      expected[r[0].as<std::string>()] = r[1].as<long long>();
    }
    CHECK(left == expected);
    return read == full && left == expected;
  };
  auto batches_agree = [&] { return table_agrees() && readers_agree(); };
  // Every (minute, to_state, error class) of the job_events still there that changed a
  // state (a download's or a stuck flag's event is not a move).
  auto events_agree = [&] {
    pqxx::read_transaction tx(connection);
    return tx.exec1(R"(
      SELECT count(*) FROM (
        SELECT date_trunc('minute', at) AS minute, to_state, coalesce(detail -> 'error' ->> 'class', '') AS error_class,
               count(*)::bigint AS n
        FROM klingq.job_events WHERE from_state IS DISTINCT FROM to_state GROUP BY 1, 2, 3) full_count
      FULL JOIN (SELECT minute, to_state, coalesce(error_class, '') AS error_class, sum(n)::bigint AS n
                 FROM klingq.event_minutes
                 GROUP BY 1, 2, 3 HAVING sum(n) <> 0) counted
      USING (minute, to_state, error_class)
      WHERE full_count.n IS DISTINCT FROM counted.n)")[0].as<int>() == 0;
  };
  auto submitted_credits = [&](const char* table) {
    pqxx::read_transaction tx(connection);
    if (std::string(table) == "jobs") {
      return tx.exec1("SELECT coalesce(sum(j.credit_cost), 0) FROM klingq.job_events e JOIN klingq.jobs j "
                      "ON j.id = e.job_id WHERE e.to_state = 'submitted'")[0].as<long long>();
    }
    return tx.exec1("SELECT coalesce(sum(credits), 0) FROM klingq.event_minutes WHERE to_state = 'submitted'")[0]
        .as<long long>();
  };
  CHECK(batches_agree());
  CHECK(events_agree());
  CHECK(submitted_credits("minutes") == submitted_credits("jobs"));
  CHECK(submitted_credits("minutes") == 10 * 35);

  {
    pqxx::work tx(connection);
    tx.exec("INSERT INTO klingq.jobs (prompt, batch) SELECT 'p' || g, 'b' || (g % 9) FROM generate_series(1, 300) g");
    tx.exec("UPDATE klingq.jobs SET state = 'submitted', remote_id = 'r' || id, credit_cost = 40 WHERE state = 'queued' AND id % 3 = 0");
    tx.exec("UPDATE klingq.jobs SET credit_cost = 20 WHERE state = 'submitted' AND id % 2 = 0");  // cost only
    tx.exec("UPDATE klingq.jobs SET state = 'completed' WHERE state = 'submitted' AND id % 5 = 0");
    tx.exec("UPDATE klingq.jobs SET state = 'dispatching', lease_owner = 'x', lease_expires_at = now() "
            "WHERE state = 'queued' AND id % 17 = 0");
    tx.exec("UPDATE klingq.jobs SET batch = 'moved' WHERE id % 11 = 0");          // relabel, any state
    tx.exec("UPDATE klingq.jobs SET mode = 'professional', duration = 10 WHERE state = 'queued' AND id % 13 = 0");
    tx.exec("UPDATE klingq.jobs SET priority = 2 WHERE id % 2 = 0");               // no counted change
    tx.exec("UPDATE klingq.jobs SET state = 'queued', credit_cost = NULL WHERE state = 'completed' AND id % 3 = 0");
    tx.commit();
  }
  CHECK(batches_agree());
  CHECK(events_agree());
  CHECK(submitted_credits("minutes") > 0);
  {
    // Deleting jobs takes their events; what the events counted stays (the 429s and the
    // credits of the last hour happened all the same).
    {
      // Not a move, and so not counted: the record of a download, as klingqd writes it.
      pqxx::work tx(connection);
      tx.exec("INSERT INTO klingq.job_events (job_id, from_state, to_state, detail) "
              "SELECT id, state, state, '{\"download\": \"ok\"}' FROM klingq.jobs WHERE state = 'completed' LIMIT 1");
      tx.commit();
    }
    CHECK(events_agree());
    pqxx::read_transaction tx(connection);
    const auto events = tx.exec1("SELECT count(*) FROM klingq.job_events")[0].as<long long>();
    const auto moves = tx.exec1("SELECT count(*) FROM klingq.job_events WHERE from_state IS DISTINCT FROM to_state")[0]
                           .as<long long>();
    tx.commit();
    pqxx::work del(connection);
    const auto gone = del.exec1("SELECT count(*) FROM klingq.job_events e JOIN klingq.jobs j ON j.id = e.job_id "
                                "WHERE j.id % 7 = 0")[0].as<long long>();
    del.exec("DELETE FROM klingq.jobs WHERE id % 7 = 0");
    del.commit();
    REQUIRE(gone > 0);
    pqxx::read_transaction after(connection);
    CHECK(after.exec1("SELECT count(*) FROM klingq.job_events")[0].as<long long>() == events - gone);
    CHECK(after.exec1("SELECT sum(n) FROM klingq.event_minutes")[0].as<long long>() == moves);
  }
  CHECK(batches_agree());
  {
    // The fold as klingqd runs it: one row per group, the sums unchanged.
    pqxx::work tx(connection);
    CHECK(klingq::db::job_counts::fold_batch_counts(tx));
    tx.commit();
  }
  CHECK(batches_agree());
  {
    pqxx::read_transaction tx(connection);
    CHECK(tx.exec1("SELECT count(*) FROM (SELECT 1 FROM klingq.batch_counts GROUP BY key, state, mode, duration "
                   "HAVING count(*) > 1) d")[0].as<int>() == 0);
    CHECK(tx.exec1("SELECT count(*) FROM (SELECT 1 FROM klingq.event_minutes GROUP BY minute, to_state, error_class "
                   "HAVING count(*) > 1) d")[0].as<int>() == 0);
  }
  {
    // A second instance's fold while one holds the lock skips its beat.
    pqxx::connection other(url);
    pqxx::work holder(connection);
    CHECK(klingq::db::job_counts::fold_batch_counts(holder));
    pqxx::work second(other);
    CHECK_FALSE(klingq::db::job_counts::fold_batch_counts(second));
    second.commit();
    holder.commit();
  }
  {
    pqxx::work truncate(connection);
    truncate.exec("TRUNCATE klingq.jobs CASCADE");
    truncate.exec("INSERT INTO klingq.jobs (prompt, batch) VALUES ('after truncate', 'fresh')");
    truncate.exec("UPDATE klingq.jobs SET state = 'submitted', remote_id = 'r' || id, credit_cost = 7");
    truncate.commit();
  }
  CHECK(batches_agree());
  CHECK(events_agree());
  CHECK(submitted_credits("minutes") == 7);
}
