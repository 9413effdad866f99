// lib/dispatcher/transactions called directly on a real PostgreSQL: the claim charges the
// known balance, a group of submit outcomes is recorded in one transaction, and every
// way a claimed row leaves `dispatching` without being sent gives its charge back.
#include "db/migrations.hpp"
#include "dispatcher/transactions.hpp"
#include "support/pg_cluster.hpp"

#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include <map>

using klingq::testing::PgCluster;
namespace db = klingq::db;
namespace dispatcher = klingq::dispatcher;
namespace api = klingq::api;

namespace {

dispatcher::QueueSettings settings_for(const std::string& instance) {
  dispatcher::QueueSettings s;
  s.instance = instance;
  s.plan = {0, 0, 0};  // enterprise: no limits, only the credit gate decides
  s.retry_base = std::chrono::seconds(60);
  return s;
}

std::int64_t balance(pqxx::connection& c) {
  pqxx::read_transaction tx(c);
  return tx.exec1("SELECT balance FROM klingq.account WHERE name = 'default'")[0].as<std::int64_t>();
}

std::map<std::int64_t, std::string> states(pqxx::connection& c) {
  pqxx::read_transaction tx(c);
  std::map<std::int64_t, std::string> out;
  for (const auto& row : tx.exec("SELECT id, state::text FROM klingq.jobs")) out[row[0].as<std::int64_t>()] = row[1].c_str();
  return out;
}

void insert_jobs(pqxx::connection& c, int n) {
  pqxx::work tx(c);
  tx.exec("INSERT INTO klingq.jobs (prompt, max_attempts) SELECT 'prompt ' || g, 3 FROM generate_series(1, " +
          std::to_string(n) + ") g");
  tx.commit();
}

api::Outcome accepted(const std::string& remote_id, std::int64_t cost) {
  api::Outcome o;
  o.outcome = api::OutcomeClass::accepted;
  o.http_status = 200;
  o.remote_id = remote_id;
  o.credit_cost = cost;
  return o;
}

api::Outcome refused(api::OutcomeClass kind, unsigned status) {
  api::Outcome o;
  o.outcome = kind;
  o.http_status = status;
  o.message = "refused in a test";
  return o;
}

}  // namespace

TEST_CASE("a claim charges the known balance and a group of outcomes settles it in one transaction") {
  pqxx::connection c(PgCluster::shared().migrated_database());
  auto settings = settings_for("queue-test");
  const std::int64_t unit = settings.cost.standard_5;
  dispatcher::ensure_account(c, settings);
  dispatcher::set_balance(c, settings, 10000);
  insert_jobs(c, 5);

  auto claim = dispatcher::claim(c, settings, 5);
  REQUIRE(claim.jobs.size() == 5);
  CHECK(balance(c) == 10000 - 5 * unit);

  // A webhook for the fifth job arrives before its submit is recorded: it waits in the inbox.
  api::Completion early{"remote-5", "failed", "", "{}", "generation failed", false};
  CHECK(dispatcher::apply_completion(c, settings, early).result == dispatcher::CompletionResult::unknown_stored);

  std::vector<dispatcher::SubmitInput> group;
  group.push_back({claim.jobs[0], accepted("remote-1", unit), {}, 0.5});
  group.push_back({claim.jobs[1], accepted("remote-2", unit + 3), {}, 0.5});  // the API charged more
  group.push_back({claim.jobs[2], refused(api::OutcomeClass::invalid_job, 400), {}, 0.5});
  group.push_back({claim.jobs[3], refused(api::OutcomeClass::transient, 503), {}, 0.5});
  group.push_back({claim.jobs[4], accepted("remote-5", unit), {}, 0.5});
  auto records = dispatcher::record_submits(c, settings, group);

  REQUIRE(records.size() == 5);
  CHECK(records[0].new_state == "submitted");
  CHECK(records[1].new_state == "submitted");
  CHECK(records[2].new_state == "failed");
  CHECK(records[3].new_state == "queued");
  CHECK(records[4].new_state == "failed");
  CHECK(records[4].completed_early);
  auto now = states(c);
  CHECK(now[claim.jobs[0].id] == "submitted");
  CHECK(now[claim.jobs[2].id] == "failed");
  CHECK(now[claim.jobs[3].id] == "queued");
  CHECK(now[claim.jobs[4].id] == "failed");
  // Two sent on and kept (one 3 dearer), two given back, one refunded by its failure.
  CHECK(balance(c) == 10000 - 2 * unit - 3);
  {
    pqxx::read_transaction tx(c);
    CHECK(tx.exec1("SELECT count(*) FROM klingq.webhook_inbox")[0].as<int>() == 0);
    CHECK(tx.exec1("SELECT credit_cost FROM klingq.jobs WHERE remote_id = 'remote-2'")[0].as<int>() == unit + 3);
  }

  // Recording the same group again (a retry after a lost commit reply) changes nothing.
  auto again = dispatcher::record_submits(c, settings, group);
  for (const auto& record : again) CHECK(record.new_state.empty());
  CHECK(balance(c) == 10000 - 2 * unit - 3);
}

TEST_CASE("a refreshed balance leaves out unanswered claims - expired and released leases give their charge back") {
  pqxx::connection c(PgCluster::shared().migrated_database());
  auto settings = settings_for("queue-test-a");
  const std::int64_t unit = settings.cost.standard_5;
  dispatcher::ensure_account(c, settings);
  dispatcher::set_balance(c, settings, 1000);
  insert_jobs(c, 4);

  auto first = dispatcher::claim(c, settings, 2);
  REQUIRE(first.jobs.size() == 2);
  CHECK(balance(c) == 1000 - 2 * unit);
  // The API says 5000: the two rows on their way are not in it yet.
  dispatcher::set_balance(c, settings, 5000);
  CHECK(balance(c) == 5000 - 2 * unit);

  // The instance holding them dies; another reaps the expired leases and claims again.
  {
    pqxx::work tx(c);
    tx.exec("UPDATE klingq.jobs SET lease_expires_at = now() - interval '1 second' WHERE state = 'dispatching'");
    tx.commit();
  }
  auto other = settings_for("queue-test-b");
  auto second = dispatcher::claim(c, other, 4);
  CHECK(second.jobs.size() == 4);
  CHECK(balance(c) == 5000 - 4 * unit);

  // A 402 replaces the balance with the API's figure, less the other unanswered claims.
  api::Outcome no_credit = refused(api::OutcomeClass::no_credit, 402);
  no_credit.credits_available = 1000;
  auto records = dispatcher::record_submits(c, other, {{second.jobs[0], no_credit, {}, 0.5}});
  CHECK(records[0].new_state == "queued");
  CHECK(balance(c) == 1000 - 3 * unit);

  // Shutdown releases the rest and gives their charge back.
  CHECK(dispatcher::release_leases(c, other) == 3);
  CHECK(balance(c) == 1000);
}

// The API refuses a repeated Idempotency-Key with a different body (409), and each
// instance has its own webhook.public_url: a row resubmitted by another instance after
// its first claimer died must carry the first claimer's webhookUrl.
TEST_CASE("a row keeps the webhookUrl of its first claim, whoever resubmits it") {
  pqxx::connection c(PgCluster::shared().migrated_database());
  auto first_instance = settings_for("queue-test-first");
  first_instance.webhook_url = "http://first.example/klingq/webhook";
  auto second_instance = settings_for("queue-test-second");
  second_instance.webhook_url = "http://second.example/klingq/webhook";
  auto no_webhooks = settings_for("queue-test-polling");
  dispatcher::ensure_account(c, first_instance);
  dispatcher::set_balance(c, first_instance, 100000);
  insert_jobs(c, 1);

  auto first = dispatcher::claim(c, first_instance, 1);
  REQUIRE(first.jobs.size() == 1);
  CHECK(first.jobs[0].webhook_url == first_instance.webhook_url);
  // The first claimer dies mid-request; the row comes back to another instance.
  {
    pqxx::work tx(c);
    tx.exec("UPDATE klingq.jobs SET lease_expires_at = now() - interval '1 second' WHERE state = 'dispatching'");
    tx.commit();
  }
  auto second = dispatcher::claim(c, second_instance, 1);
  REQUIRE(second.jobs.size() == 1);
  CHECK(second.jobs[0].spec.idempotency_key == first.jobs[0].spec.idempotency_key);
  CHECK(second.jobs[0].webhook_url == first_instance.webhook_url);

  // A row first claimed by an instance without webhooks stays without one.
  insert_jobs(c, 1);
  auto polled = dispatcher::claim(c, no_webhooks, 1);
  REQUIRE(polled.jobs.size() == 1);
  CHECK(polled.jobs[0].webhook_url == "");
  CHECK(dispatcher::release_leases(c, no_webhooks) == 1);
  auto again = dispatcher::claim(c, second_instance, 1);
  REQUIRE(again.jobs.size() == 1);
  CHECK(again.jobs[0].webhook_url == "");
}

// A claim counts its rows against the day before they are sent. A row whose answer was
// lost (expired lease, transient error) may have been accepted: its resubmit, with the
// same Idempotency-Key, is not counted again. A row released unsent gives its count back.
TEST_CASE("a row whose answer was lost is counted against the day once, a released row not at all") {
  pqxx::connection c(PgCluster::shared().migrated_database());
  auto settings = settings_for("queue-test-day-a");
  settings.plan = {0, 0, 10};  // ten jobs a day, nothing else limited
  auto other = settings_for("queue-test-day-b");
  other.plan = settings.plan;
  dispatcher::ensure_account(c, settings);
  dispatcher::set_balance(c, settings, 100000);
  insert_jobs(c, 4);
  auto day_used = [&] {
    pqxx::read_transaction tx(c);
    return tx.exec1("SELECT day_used FROM klingq.account WHERE name = 'default'")[0].as<std::int64_t>();
  };

  auto first = dispatcher::claim(c, settings, 3);
  REQUIRE(first.jobs.size() == 3);
  CHECK(day_used() == 3);
  // One answer is lost to a transient error, the instance dies holding the other two.
  api::Outcome lost = refused(api::OutcomeClass::transient, 0);
  auto records = dispatcher::record_submits(c, settings, {{first.jobs[0], lost, {}, 0.0}});
  CHECK(records[0].new_state == "queued");
  CHECK(day_used() == 3);
  {
    pqxx::work tx(c);
    tx.exec("UPDATE klingq.jobs SET lease_expires_at = now() - interval '1 second', run_after = now() - interval '1 second'"
            " WHERE state IN ('dispatching', 'queued')");
    tx.commit();
  }
  // All three come back with the fourth, which is the only new job of the day.
  auto again = dispatcher::claim(c, other, 4);
  CHECK(again.jobs.size() == 4);
  CHECK(day_used() == 4);
  // Released unsent at shutdown: none of the four was sent by this claim.
  CHECK(dispatcher::release_leases(c, other) == 4);
  CHECK(day_used() == 0);
  auto last = dispatcher::claim(c, settings, 4);
  CHECK(last.jobs.size() == 4);
  CHECK(day_used() == 4);
}

TEST_CASE("with webhooks on, an accepted job's first poll is due after first_after + grace, not twice that") {
  // The bug: options_from adds poll.webhook_grace_seconds to first_poll, and the record
  // of the submit doubled the sum again: 360 s instead of the documented 180 s.
  pqxx::connection c(PgCluster::shared().migrated_database());
  auto settings = settings_for("first-poll-test");
  settings.webhook_url = "https://hooks.example/klingq";
  settings.first_poll = std::chrono::seconds(60);      // first_after
  settings.webhook_grace = std::chrono::seconds(120);  // + grace, once
  dispatcher::ensure_account(c, settings);
  dispatcher::set_balance(c, settings, 10000);
  insert_jobs(c, 1);
  auto claim = dispatcher::claim(c, settings, 1);
  REQUIRE(claim.jobs.size() == 1);
  auto records = dispatcher::record_submits(c, settings, {{claim.jobs[0], accepted("remote-poll", 100), {}, 0.5}});
  REQUIRE(records[0].new_state == "submitted");
  pqxx::read_transaction tx(c);
  CHECK(tx.exec1("SELECT extract(epoch FROM next_poll_at - submitted_at)::float8 FROM klingq.jobs")[0].as<double>() ==
        doctest::Approx(180.0));
}
