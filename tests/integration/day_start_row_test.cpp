// What the limiter learns about the provider's day, through the klingq.account row on a
// real PostgreSQL: lock → decide → save keeps the learned hour and the Reset-Day flag for
// the next transaction (another instance, a restart), and the submits still dispatching
// are what the lock reports as unanswered.
#include "db/migrations.hpp"
#include "dispatcher/transactions.hpp"
#include "support/pg_cluster.hpp"
#include "support/stack.hpp"

#include <doctest/doctest.h>
#include <pqxx/pqxx>

using klingq::testing::PgCluster;
namespace dispatcher = klingq::dispatcher;
namespace api = klingq::api;
namespace ratelimit = klingq::ratelimit;
using namespace std::chrono_literals;

namespace {

api::Outcome ok() {
  api::Outcome o;
  o.outcome = api::OutcomeClass::accepted;
  o.http_status = 200;
  return o;
}

ratelimit::Observation remaining_day(std::int64_t limit, std::int64_t remaining) {
  ratelimit::Observation o;
  o.daily.limit = limit;
  o.daily.remaining = remaining;
  return o;
}

}  // namespace

TEST_CASE("dispatch: the account row keeps the learned day start, and dispatching rows explain the API's room") {
  pqxx::connection c(PgCluster::shared().migrated_database());
  dispatcher::QueueSettings settings;
  settings.instance = "day-row-test";
  settings.plan = {0, 10, 5};  // ten parallel, five a day
  // The parallel limit (10) bounds reordering above the day (5): only the quiet rule (no
  // submit for two answer deadlines) can prove a new day. A short deadline keeps it quick.
  settings.limiter.answer_deadline = 1ms;
  dispatcher::ensure_account(c, settings);
  dispatcher::set_balance(c, settings, 100000);
  {
    pqxx::work tx(c);
    tx.exec("INSERT INTO klingq.jobs (prompt) SELECT 'prompt ' || g FROM generate_series(1, 8) g");
    tx.commit();
  }
  auto row = [&](const char* column) {
    pqxx::read_transaction tx(c);
    return tx.exec1(std::string("SELECT ") + column + " FROM klingq.account WHERE name = 'default'")[0];
  };

  auto first = dispatcher::claim(c, settings, 5);
  REQUIRE(first.jobs.size() == 5);
  CHECK(first.day_reset_assumed);
  CHECK(row("day_used").as<int>() == 5);
  // A balance answer that the API produced before it counted any of the five, which are
  // all still dispatching: room they explain, not a new day.
  dispatcher::record_response(c, settings, ok(), remaining_day(5, 5));
  CHECK(row("day_used").as<int>() == 5);
  CHECK(row("day_start_ms").is_null());

  // All five answered: the same room now means the API's day began.
  std::vector<dispatcher::SubmitInput> answers;
  for (std::size_t i = 0; i < first.jobs.size(); ++i) {
    auto accepted = ok();
    accepted.remote_id = "day-row-" + std::to_string(i);
    accepted.credit_cost = 100;
    answers.push_back({first.jobs[i], accepted, remaining_day(5, 4 - static_cast<std::int64_t>(i)), 0.5});
  }
  dispatcher::record_submits(c, settings, answers);
  CHECK(row("day_used").as<int>() == 5);
  auto held = dispatcher::claim(c, settings, 1);
  CHECK(held.jobs.empty());
  CHECK(held.held_by == dispatcher::Hold::daily);
  CHECK(held.day_reset_assumed);

  // Asked again (the hold's look-again) until no submit can still be on its way.
  REQUIRE(klingq::testing::Stack::wait_until(
      [&] {
        dispatcher::record_response(c, settings, ok(), remaining_day(5, 5));
        return row("day_used").as<int>() == 0;
      },
      5s));
  CHECK_FALSE(row("day_start_ms").is_null());
  CHECK(row("day_reset_reported").as<bool>() == false);
  // Tomorrow at the hour it was seen (the database's clock decides).
  CHECK(row("extract(epoch FROM day_reset_at - now()) BETWEEN 86390 AND 86401").as<bool>());
  CHECK(row("day_start_ms = (extract(epoch FROM day_reset_at)::numeric * 1000)::bigint % 86400000").as<bool>());
  // The next transaction (any instance) starts from it.
  auto next = dispatcher::claim(c, settings, 3);
  CHECK(next.jobs.size() == 3);
  CHECK(row("day_used").as<int>() == 3);

  // A Reset-Day header rules: the end is no longer assumed, and its hour is the day's.
  auto told = remaining_day(5, 2);
  told.daily.reset_at = klingq::Clock::now() + 5h;
  dispatcher::record_response(c, settings, ok(), told);
  CHECK(row("day_reset_reported").as<bool>() == true);
  CHECK(row("day_start_ms").as<long long>() == klingq::to_epoch_ms(*told.daily.reset_at) % 86400000);
  CHECK_FALSE(dispatcher::claim(c, settings, 1).day_reset_assumed);
}
