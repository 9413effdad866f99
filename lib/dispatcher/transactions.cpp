#include "dispatcher/transactions.hpp"

#include "credit/gate.hpp"

#include <pqxx/pqxx>

#include <boost/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <unordered_map>

namespace klingq::dispatcher {
namespace json = boost::json;
using ratelimit::AccountState;

namespace sql {
// The hot statements on klingq.jobs set updated_at themselves, so the per-row trigger
// jobs_touch, which fires only when an UPDATE leaves it alone, costs them nothing
// (schema/009_lighter_updates.sql).

// Expected cost of a row by the configured table ($c5s, $c10s, $c5p, $c10p as $N..$N+3).
#define KLINGQ_COST_CASE(a, b, c, d)                                                   \
  "CASE WHEN mode = 'professional' THEN CASE WHEN duration >= 10 THEN " d " ELSE " c \
  " END ELSE CASE WHEN duration >= 10 THEN " b " ELSE " a " END END"

constexpr const char* account_ensure = R"(
INSERT INTO klingq.account (name, rpm_limit, parallel_limit, day_limit)
VALUES ($1, $2, $3, $4)
ON CONFLICT (name) DO UPDATE SET rpm_limit = $2, parallel_limit = $3, day_limit = $4
  WHERE klingq.account.limits_source = 'plan')";

constexpr const char* account_lock = R"(
SELECT rpm_limit, rpm_remaining, klingq.epoch_ms(rpm_reset_at), klingq.epoch_ms(rpm_next_at),
       klingq.epoch_ms(poll_next_at), klingq.epoch_ms(rpm_paused_until),
       day_limit, day_used, klingq.epoch_ms(day_reset_at), klingq.epoch_ms(day_paused_until),
       parallel_limit, klingq.epoch_ms(parallel_paused_until), limits_source,
       balance, halted_reason, paused, klingq.epoch_ms(clock_timestamp()),
       EXISTS (SELECT 1 FROM klingq.batch_budgets)
FROM klingq.account WHERE name = $1 FOR UPDATE)";

constexpr const char* account_save = R"(
UPDATE klingq.account SET
  rpm_limit = $2, rpm_remaining = $3, rpm_reset_at = klingq.from_epoch_ms($4),
  rpm_next_at = coalesce(klingq.from_epoch_ms($5), '-infinity'),
  poll_next_at = coalesce(klingq.from_epoch_ms($6), '-infinity'),
  rpm_paused_until = klingq.from_epoch_ms($7),
  day_limit = $8, day_used = $9, day_reset_at = klingq.from_epoch_ms($10),
  day_paused_until = klingq.from_epoch_ms($11),
  parallel_limit = $12, parallel_paused_until = klingq.from_epoch_ms($13),
  limits_source = $14, balance = balance - $15, updated_at = now()
WHERE name = $1)";

// Rows of a crashed instance come back; the same idempotency key makes the resubmit
// return the job the API already has instead of charging again.
constexpr const char* jobs_reap_expired_leases = "WITH reaped AS (" R"(
UPDATE klingq.jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL,
  wait_reason = 'lease of ' || lease_owner || ' expired; resubmitting with the same idempotency key'
WHERE state = 'dispatching' AND lease_expires_at < now()
RETURNING )" KLINGQ_COST_CASE("$1::bigint", "$2::bigint", "$3::bigint", "$4::bigint") " AS cost) "
    "SELECT coalesce(sum(cost), 0) FROM reaped";

// Jobs holding a parallel slot, of every instance. A statement of its own, run after the
// account row is locked: a subquery of the locking SELECT would count with the snapshot
// taken before it waited for the lock and miss the rows the previous holder just claimed.
// Submitted rows are counted only up to the parallel limit ($1, 0 when unlimited): all
// the limiter needs is whether a slot is free, and a large backlog stays cheap.
constexpr const char* jobs_count_in_flight = R"(
SELECT (SELECT count(*) FROM klingq.jobs WHERE state = 'dispatching')
     + (SELECT count(*) FROM (SELECT 1 FROM klingq.jobs WHERE state = 'submitted' LIMIT $1) s))";

constexpr const char* jobs_claim_candidates = "SELECT id, " KLINGQ_COST_CASE(
    "$2::bigint", "$3::bigint", "$4::bigint", "$5::bigint") ", klingq.epoch_ms(run_after), batch, day_counted "
    "FROM klingq.jobs "
    "WHERE state = 'queued' AND run_after <= now() "
    "ORDER BY priority DESC, run_after, id LIMIT $1 FOR UPDATE SKIP LOCKED";

// What each budgeted batch may still commit: failed jobs were refunded, so they do not count.
constexpr const char* batch_budgets_left = "SELECT b.batch, b.budget - coalesce((SELECT sum(coalesce(j.credit_cost, "
    KLINGQ_COST_CASE("$1::bigint", "$2::bigint", "$3::bigint", "$4::bigint") ")) FROM klingq.jobs j "
    "WHERE j.batch = b.batch AND j.state IN ('dispatching', 'submitted', 'completed')), 0) "
    "FROM klingq.batch_budgets b";
constexpr const char* jobs_mark_batch_waiting = R"(
UPDATE klingq.jobs SET wait_reason = 'batch budget spent (klingq.batch_budgets)'
WHERE state = 'queued' AND batch = $1
  AND wait_reason IS DISTINCT FROM 'batch budget spent (klingq.batch_budgets)')";

constexpr const char* jobs_claim = R"(
UPDATE klingq.jobs SET state = 'dispatching', lease_owner = $2,
  lease_expires_at = now() + make_interval(secs => $3), wait_reason = NULL,
  submit_webhook_url = coalesce(submit_webhook_url, $4), day_counted = true, updated_at = now()
WHERE id = ANY($1::bigint[])
RETURNING id, prompt, duration, aspect_ratio, version, mode, options::text,
          idempotency_key::text, attempts, max_attempts, klingq.epoch_ms(created_at),
          submit_webhook_url)";

// A group of accepted submits: $1 = [{"id":..,"remote_id":..,"cost":..}, ...], $4 = their
// ids. Without `j.id = ANY($4)` the plan can only read every dispatching row of every
// instance through jobs_lease_idx and hash-join them with the group: 2.4 ms for a group
// of 20 among 5,000 dispatching rows, against 0.07 ms by primary key. (With a few hundred
// dispatching rows the planner still prefers the lease index, and it costs little.) The
// ids come separately because an array derived from $1 inside the statement is unknown
// to the planner and does not lead it to the primary key.
constexpr const char* jobs_mark_submitted_many = R"(
UPDATE klingq.jobs j SET state = 'submitted', remote_id = u.remote_id, credit_cost = u.cost,
  attempts = j.attempts + 1, submitted_at = now(), lease_expires_at = NULL,
  next_poll_at = now() + make_interval(secs => $3), wait_reason = NULL, updated_at = now()
FROM jsonb_to_recordset($1::jsonb) AS u(id bigint, remote_id text, cost bigint)
WHERE j.id = ANY($4::bigint[]) AND j.id = u.id AND j.state = 'dispatching' AND j.lease_owner = $2
RETURNING j.id, j.credit_cost)";

// last_error keeps the latest error and the history of all of them.
constexpr const char* jobs_mark_failed = R"(
UPDATE klingq.jobs SET state = 'failed', attempts = attempts + $4, completed_at = now(),
  lease_expires_at = NULL,
  last_error = jsonb_build_object('last', $3::jsonb,
                                  'history', coalesce(last_error -> 'history', '[]') || $3::jsonb)
WHERE id = $1 AND state = 'dispatching' AND lease_owner = $2)";

constexpr const char* jobs_requeue = R"(
UPDATE klingq.jobs SET state = 'queued', attempts = attempts + $4, lease_owner = NULL,
  lease_expires_at = NULL, run_after = greatest(now(), klingq.from_epoch_ms($5)),
  wait_reason = $6, day_counted = $7,
  last_error = CASE WHEN $3::jsonb IS NULL THEN last_error
                    ELSE jsonb_build_object('last', $3::jsonb,
                                            'history', coalesce(last_error -> 'history', '[]') || $3::jsonb) END
WHERE id = $1 AND state = 'dispatching' AND lease_owner = $2)";

// The API's balance, less what claimed rows not yet answered are expected to cost (their
// charge was taken at the claim, see claim()).
constexpr const char* account_set_balance = "UPDATE klingq.account SET balance = $2 - (SELECT coalesce(sum("
    KLINGQ_COST_CASE("$3::bigint", "$4::bigint", "$5::bigint", "$6::bigint") "), 0) FROM klingq.jobs "
    "WHERE state = 'dispatching'), balance_at = now() WHERE name = $1";
// A negative charge is a refund.
constexpr const char* account_charge =
    "UPDATE klingq.account SET balance = balance - $2 WHERE name = $1 AND balance IS NOT NULL";
constexpr const char* account_halt = R"(
UPDATE klingq.account SET halted_reason = $2, halted_at = now()
WHERE name = $1 AND halted_reason IS NULL)";
constexpr const char* account_clear_halt =
    "UPDATE klingq.account SET halted_reason = NULL, halted_at = NULL WHERE name = $1";

constexpr const char* completion_lock = "SELECT pg_advisory_xact_lock(hashtext('klingq.remote:' || $1))";
// The same locks for a group of remote ids ($1, a JSON array), taken in one order so two
// groups that share an id (a resubmit after a lost lease) cannot deadlock.
constexpr const char* completion_lock_many = R"(
SELECT pg_advisory_xact_lock(k) FROM (
  SELECT hashtext('klingq.remote:' || r) AS k FROM jsonb_array_elements_text($1::jsonb) r ORDER BY k) s)";

// With outputs.download on, a completed job's video becomes due for download in the
// same transaction (schema/006_outputs.sql): a crash right after loses nothing.
constexpr const char* jobs_complete = R"(
UPDATE klingq.jobs SET state = $2::klingq.job_state, url = nullif($3, ''), metadata = $4::jsonb,
  completed_at = now(), next_poll_at = NULL, wait_reason = NULL, updated_at = now(),
  output_next_at = CASE WHEN $6::boolean AND $2::klingq.job_state = 'completed' AND nullif($3, '') IS NOT NULL
                        THEN now() END,
  last_error = CASE WHEN $5::jsonb IS NULL THEN last_error
                    ELSE jsonb_build_object('last', $5::jsonb,
                                            'history', coalesce(last_error -> 'history', '[]') || $5::jsonb) END
WHERE remote_id = $1 AND state = 'submitted'
RETURNING id, credit_cost, extract(epoch FROM now() - submitted_at))";

constexpr const char* jobs_state_by_remote_id = "SELECT state::text FROM klingq.jobs WHERE remote_id = $1";
constexpr const char* inbox_put = R"(
INSERT INTO klingq.webhook_inbox (remote_id, status, url, metadata, error)
VALUES ($1, $2, $3, $4::jsonb, $5) ON CONFLICT (remote_id) DO NOTHING)";
constexpr const char* inbox_take_many = R"(
DELETE FROM klingq.webhook_inbox WHERE remote_id IN (SELECT jsonb_array_elements_text($1::jsonb))
RETURNING remote_id, status, coalesce(url, ''), coalesce(metadata::text, '{}'), coalesce(error, ''))";
constexpr const char* notify_slot_freed = "SELECT pg_notify('klingq_jobs', 'slot')";

constexpr const char* jobs_due_polls = R"(
SELECT id, remote_id, polls FROM klingq.jobs
WHERE state = 'submitted' AND next_poll_at <= now()
ORDER BY next_poll_at LIMIT $1 FOR UPDATE SKIP LOCKED)";
constexpr const char* jobs_next_poll_at = R"(
SELECT klingq.epoch_ms(min(next_poll_at)) FROM klingq.jobs WHERE state = 'submitted')";
constexpr const char* jobs_schedule_poll = R"(
UPDATE klingq.jobs SET polls = polls + 1,
  next_poll_at = now() + make_interval(secs => $2)
WHERE id = $1)";
// Flag, once, the jobs nothing resolved within the horizon (event + wait_reason).
constexpr const char* jobs_flag_stuck = R"(
WITH stuck AS (
  UPDATE klingq.jobs SET wait_reason = 'stuck: unresolved past poll.horizon_seconds'
  WHERE state = 'submitted' AND submitted_at < now() - make_interval(secs => $1)
    AND wait_reason IS DISTINCT FROM 'stuck: unresolved past poll.horizon_seconds'
  RETURNING id, lease_owner)
INSERT INTO klingq.job_events (job_id, from_state, to_state, instance, detail)
SELECT id, 'submitted', 'submitted', lease_owner, '{"stuck": true}'::jsonb FROM stuck)";

constexpr const char* jobs_release_leases = "WITH released AS (" R"(
UPDATE klingq.jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL,
  wait_reason = 'released at shutdown', day_counted = false
WHERE state = 'dispatching' AND lease_owner = $1
RETURNING )" KLINGQ_COST_CASE("$2::bigint", "$3::bigint", "$4::bigint", "$5::bigint") " AS cost) "
    "SELECT count(*), coalesce(sum(cost), 0) FROM released";

constexpr const char* instance_heartbeat = R"(
INSERT INTO klingq.instances (id, host, pid, version, status)
VALUES ($1, $2, $3, $4, $5::jsonb)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), status = excluded.status)";
constexpr const char* instance_remove = "DELETE FROM klingq.instances WHERE id = $1";
constexpr const char* instances_live =
    "SELECT count(*) FROM klingq.instances WHERE heartbeat_at > now() - interval '30 seconds'";
// klingq.job_counts (schema 005): the sum of net changes per state, folded back into one
// row per state first so the table stays small.
constexpr const char* job_counts_fold = R"(
WITH folded AS (DELETE FROM klingq.job_counts RETURNING state, n)
INSERT INTO klingq.job_counts (state, n) SELECT state, sum(n) FROM folded GROUP BY state)";
constexpr const char* jobs_by_state = R"(
SELECT state::text, sum(n)::bigint FROM klingq.job_counts GROUP BY state)";
constexpr const char* jobs_stuck_count = R"(
SELECT count(*) FROM klingq.jobs WHERE state = 'submitted'
  AND wait_reason = 'stuck: unresolved past poll.horizon_seconds')";

#undef KLINGQ_COST_CASE
}  // namespace sql

namespace {

// Every statement runs prepared: libpqxx registers it once per connection (PREPAREd on
// first use, again after a reconnect), so the hot claim and record statements are parsed
// and planned once instead of on every call. The name is the text's hash.
const std::string& statement_name(const char* text) {
  thread_local std::unordered_map<const char*, std::string> names;
  auto [it, fresh] = names.try_emplace(text);
  if (fresh) it->second = "klingq_" + std::to_string(std::hash<std::string_view>{}(text));
  return it->second;
}

template <typename... Args>
pqxx::result exec(pqxx::transaction_base& tx, const char* text, Args&&... args) {
  const auto& name = statement_name(text);
  tx.conn().prepare(name, text);
  return tx.exec_prepared(name, std::forward<Args>(args)...);
}

template <typename... Args>
pqxx::row exec1(pqxx::transaction_base& tx, const char* text, Args&&... args) {
  auto rows = exec(tx, text, std::forward<Args>(args)...);
  if (rows.size() != 1) throw pqxx::unexpected_rows("expected 1 row, got " + std::to_string(rows.size()));
  return rows[0];
}

std::optional<long long> opt_ms(const std::optional<TimePoint>& t) {
  if (!t) return std::nullopt;
  return to_epoch_ms(*t);
}
std::optional<long long> opt_ms(TimePoint t) {
  if (t == TimePoint{}) return std::nullopt;
  return to_epoch_ms(t);
}
std::optional<TimePoint> time_of(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return from_epoch_ms(f.as<long long>());
}
std::optional<long long> int_of(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<long long>();
}

struct Locked {
  AccountState state;
  std::optional<std::int64_t> balance;
  bool halted = false;
  bool paused = false;
  TimePoint now;
  bool batch_budgets = false;    // klingq.batch_budgets has rows
};

Locked lock_account(pqxx::work& tx, const QueueSettings& settings) {
  auto rows = exec(tx, sql::account_lock, settings.account);
  if (rows.empty()) throw std::runtime_error("klingq.account row '" + settings.account + "' is missing");
  const auto& r = rows[0];
  Locked locked;
  auto& s = locked.state;
  s.rpm_limit = r[0].as<long long>();
  s.rpm_remaining = int_of(r[1]);
  s.rpm_reset_at = time_of(r[2]);
  s.rpm_next_at = time_of(r[3]).value_or(TimePoint{});
  s.poll_next_at = time_of(r[4]).value_or(TimePoint{});
  s.rpm_paused_until = time_of(r[5]);
  s.day_limit = r[6].as<long long>();
  s.day_used = r[7].as<long long>();
  s.day_reset_at = time_of(r[8]);
  s.day_paused_until = time_of(r[9]);
  s.parallel_limit = r[10].as<long long>();
  s.parallel_paused_until = time_of(r[11]);
  s.limits_source = r[12].as<std::string>();
  locked.balance = int_of(r[13]);
  locked.halted = !r[14].is_null();
  locked.paused = r[15].as<bool>();
  // The database's clock, so every instance decides on the same time.
  locked.now = from_epoch_ms(r[16].as<long long>());
  locked.batch_budgets = r[17].as<bool>();
  ratelimit::roll(s, locked.now, settings.limiter);
  return locked;
}

// Writes the limiter state back; `charge` is taken from the known balance in the same statement.
void save_account(pqxx::work& tx, const QueueSettings& settings, const AccountState& s, std::int64_t charge = 0) {
  exec(tx, sql::account_save, settings.account, static_cast<long long>(s.rpm_limit),
       s.rpm_remaining ? std::optional<long long>(*s.rpm_remaining) : std::nullopt,
       opt_ms(s.rpm_reset_at), opt_ms(s.rpm_next_at), opt_ms(s.poll_next_at),
       opt_ms(s.rpm_paused_until), static_cast<long long>(s.day_limit),
       static_cast<long long>(s.day_used), opt_ms(s.day_reset_at),
       opt_ms(s.day_paused_until), static_cast<long long>(s.parallel_limit),
       opt_ms(s.parallel_paused_until), s.limits_source, static_cast<long long>(charge));
}

std::string error_json(const api::Outcome& outcome, int attempt) {
  json::object error{{"class", api::to_string(outcome.outcome)},
                     {"status", outcome.http_status},
                     {"message", outcome.message},
                     {"attempt", attempt}};
  if (!outcome.code.empty()) error["code"] = outcome.code;
  return json::serialize(error);
}

double seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

std::string ids_array(const std::vector<std::int64_t>& ids) {
  std::string text = "{";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) text += ',';
    text += std::to_string(ids[i]);
  }
  return text + "}";
}

CompletionOutcome complete_locked(pqxx::work& tx, const QueueSettings& settings, const Completion& c) {
  const auto& account = settings.account;
  CompletionOutcome out;
  std::optional<std::string> error;
  if (c.status == "failed") {
    error = json::serialize(json::object{{"class", "remote_failed"},
                                         {"message", c.error.empty() ? "failed" : c.error}});
  }
  auto rows = exec(tx, sql::jobs_complete, c.remote_id, c.status, c.url, c.metadata_json, error,
                   settings.download_outputs);
  if (!rows.empty()) {
    out.result = CompletionResult::applied;
    out.job_id = rows[0][0].as<long long>();
    if (!rows[0][2].is_null()) out.submit_to_complete_seconds = rows[0][2].as<double>();
    if (c.status == "failed" && !rows[0][1].is_null()) {
      exec(tx, sql::account_charge, account, -rows[0][1].as<long long>());
    }
    exec(tx, sql::notify_slot_freed);
    return out;
  }
  auto state = exec(tx, sql::jobs_state_by_remote_id, c.remote_id);
  if (!state.empty()) {
    out.result = CompletionResult::duplicate;
    return out;
  }
  exec(tx, sql::inbox_put, c.remote_id, c.status, c.url, c.metadata_json, c.error);
  out.result = CompletionResult::unknown_stored;
  return out;
}

Hold hold_of(ratelimit::Blocker blocker) {
  switch (blocker) {
    case ratelimit::Blocker::daily: return Hold::daily;
    case ratelimit::Blocker::parallel: return Hold::parallel;
    case ratelimit::Blocker::rpm:
    case ratelimit::Blocker::none: break;
  }
  return Hold::rpm;
}

}  // namespace

const char* to_string(Hold hold) {
  switch (hold) {
    case Hold::none: return "none";
    case Hold::halted: return "halted";
    case Hold::paused: return "paused";
    case Hold::rpm: return "rpm";
    case Hold::daily: return "daily";
    case Hold::parallel: return "parallel";
    case Hold::credit: return "credit";
    case Hold::no_balance: return "no_balance";
  }
  return "none";
}

void ensure_account(pqxx::connection& connection, const QueueSettings& settings) {
  pqxx::work tx(connection);
  exec(tx, sql::account_ensure, settings.account, static_cast<long long>(settings.plan.rpm),
       static_cast<long long>(settings.plan.parallel),
       static_cast<long long>(settings.plan.daily));
  tx.commit();
}

ClaimResult claim(pqxx::connection& connection, const QueueSettings& settings, std::int64_t wanted,
                  bool reap_leases) {
  ClaimResult result;
  pqxx::work tx(connection);
  const auto& cost = settings.cost;
  const long long c5 = cost.standard_5, c10 = cost.standard_10, p5 = cost.professional_5, p10 = cost.professional_10;
  // A crashed instance's claims were charged to the known balance: they give it back.
  // Their count against the day stays: the API may have accepted them, and their
  // resubmit is not counted again (klingq.jobs.day_counted).
  std::int64_t charge = 0;
  if (reap_leases) charge -= exec1(tx, sql::jobs_reap_expired_leases, c5, c10, p5, p10)[0].as<long long>();
  auto locked = lock_account(tx, settings);
  const auto now = locked.now;
  auto finish = [&] {
    save_account(tx, settings, locked.state, charge);
    tx.commit();
    return result;
  };
  if (locked.halted || locked.paused) {
    result.held_by = locked.halted ? Hold::halted : Hold::paused;
    return finish();
  }
  const std::int64_t in_flight =
      exec1(tx, sql::jobs_count_in_flight, static_cast<long long>(std::max<std::int64_t>(0, locked.state.parallel_limit)))[0]
          .as<long long>();
  auto allowance = ratelimit::submit_allowance(locked.state, in_flight, wanted, now, settings.limiter);
  if (allowance.count <= 0) {
    result.held_by = hold_of(allowance.blocked_by);
    result.retry_at = allowance.retry_at;
    return finish();  // with the roll of ended windows
  }
  if (!locked.balance) {
    result.held_by = Hold::no_balance;
    return finish();
  }
  // Claimed rows are charged at once (below), so the known balance already leaves out
  // what the unanswered ones will cost: no other instance can spend it twice.
  const std::int64_t budget = *locked.balance - charge - settings.credit_reserve;
  // Look a little past the allowance so cheaper jobs can use credit a dear one cannot.
  // When the budget pays for the allowance even at the dearest cost and no batch has a
  // budget, the first rows in line are the ones chosen: read (and lock) only those.
  const std::int64_t dearest = std::max({c5, c10, p5, p10});
  const bool ample = !locked.batch_budgets && (dearest <= 0 || budget / dearest >= allowance.count);
  const std::int64_t look =
      ample ? allowance.count : std::min<std::int64_t>(allowance.count * 4, allowance.count + 200);
  auto rows = exec(tx, sql::jobs_claim_candidates, static_cast<long long>(look), c5, c10, p5, p10);
  std::vector<std::string> budget_batches;
  std::vector<std::int64_t> batch_left;
  if (locked.batch_budgets) {
    for (const auto& row : exec(tx, sql::batch_budgets_left, c5, c10, p5, p10)) {
      budget_batches.push_back(row[0].as<std::string>());
      batch_left.push_back(row[1].as<long long>());
    }
  }
  std::vector<credit::Candidate> candidates;
  for (const auto& row : rows) {
    credit::Candidate candidate{row[1].as<long long>(), from_epoch_ms(row[2].as<long long>())};
    if (!row[3].is_null()) {
      auto found = std::find(budget_batches.begin(), budget_batches.end(), row[3].as<std::string>());
      if (found != budget_batches.end()) candidate.batch_budget = static_cast<int>(found - budget_batches.begin());
    }
    candidates.push_back(candidate);
  }
  auto choice = credit::choose(candidates, static_cast<std::size_t>(allowance.count), budget, now,
                               settings.starvation, batch_left);
  for (int spent : choice.spent_batches) {
    exec(tx, sql::jobs_mark_batch_waiting, budget_batches[static_cast<std::size_t>(spent)]);
  }
  std::vector<std::int64_t> ids;
  std::int64_t counted_before = 0;  // resubmits of rows whose lost answer was counted
  for (auto index : choice.chosen) {
    const auto& row = rows[static_cast<pqxx::result::size_type>(index)];
    ids.push_back(row[0].as<long long>());
    if (row[4].as<bool>()) ++counted_before;
  }

  if (!ids.empty()) {
    auto claimed = exec(tx, sql::jobs_claim, ids_array(ids), settings.instance, seconds(settings.lease),
                        settings.webhook_url);
    for (const auto& row : claimed) {
      ClaimedJob job;
      job.id = row[0].as<long long>();
      job.spec.prompt = row[1].as<std::string>();
      job.spec.duration = row[2].as<int>();
      job.spec.aspect_ratio = row[3].as<std::string>();
      if (!row[4].is_null()) job.spec.version = row[4].as<std::string>();
      job.spec.mode = row[5].as<std::string>();
      job.spec.options_json = row[6].as<std::string>();
      job.spec.idempotency_key = row[7].as<std::string>();
      job.attempts = row[8].as<int>();
      job.max_attempts = row[9].as<int>();
      job.created_at = from_epoch_ms(row[10].as<long long>());
      job.webhook_url = row[11].as<std::string>();
      job.expected_cost = credit::expected_cost(cost, job.spec.mode, job.spec.duration);
      result.jobs.push_back(std::move(job));
    }
    ratelimit::take_submits(locked.state, static_cast<std::int64_t>(result.jobs.size()), now,
                            settings.limiter);
    // Each is a request, but a row already counted is not another job of the day. (The
    // allowance above still counted it: at the day's cap such a row waits for the reset
    // like a new one, the cautious side.)
    ratelimit::return_unaccepted(locked.state, counted_before);
    for (const auto& job : result.jobs) charge += job.expected_cost;
  }
  finish();

  // Why fewer than wanted: credit, an empty queue, or the tightest limit.
  const auto got = static_cast<std::int64_t>(result.jobs.size());
  if (got < wanted) {
    if (choice.short_of_credit) {
      result.held_by = Hold::credit;
    } else if (got == static_cast<std::int64_t>(rows.size()) && got < look) {
      result.queue_empty = true;
    } else {
      result.held_by = hold_of(allowance.blocked_by);
      result.retry_at = allowance.retry_at;
    }
  }
  return result;
}

std::vector<SubmitRecord> record_submits(pqxx::connection& connection, const QueueSettings& settings,
                                         const std::vector<SubmitInput>& inputs) {
  std::vector<SubmitRecord> records(inputs.size());
  pqxx::work tx(connection);
  using api::OutcomeClass;
  // The shared account row is every instance's hot spot: accepted submits whose responses
  // say nothing about limits (an unlimited plan) and cost what the claim charged for
  // them leave it alone.
  auto observed = [](const ratelimit::Observation& o) {
    return o.rpm.any() || o.daily.any() || o.parallel.any() || o.retry_after.has_value();
  };
  const bool touch_account = std::any_of(inputs.begin(), inputs.end(), [&](const SubmitInput& in) {
    return in.outcome.outcome != OutcomeClass::accepted || observed(in.observation);
  });
  json::array accepted;       // for jobs_mark_submitted_many
  std::vector<std::int64_t> accepted_job_ids;
  json::array accepted_ids;   // their remote ids, for the locks and the inbox
  std::vector<std::size_t> accepted_index;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].outcome.outcome != OutcomeClass::accepted) continue;
    const auto& in = inputs[i];
    const auto cost = in.outcome.credit_cost.value_or(in.job.expected_cost);
    accepted.push_back(json::object{{"id", in.job.id}, {"remote_id", in.outcome.remote_id}, {"cost", cost}});
    accepted_job_ids.push_back(in.job.id);
    accepted_ids.push_back(json::string(in.outcome.remote_id));
    accepted_index.push_back(i);
  }
  // Serialises with a webhook for the same remote id (apply_completion), so an early
  // webhook is either in the inbox below or finds the row submitted.
  if (!accepted.empty()) exec(tx, sql::completion_lock_many, json::serialize(accepted_ids));

  std::optional<Locked> locked;
  if (touch_account) locked = lock_account(tx, settings);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const auto& [job, outcome, observation, unit_random] = inputs[i];
    if (locked && outcome.http_status != 0) ratelimit::observe(locked->state, observation, locked->now);
    if (outcome.outcome == OutcomeClass::accepted) continue;  // all together below
    const int attempt = job.attempts + 1;
    auto& record = records[i];
    pqxx::result changed;
    // Refused for sure: the submit was not a job of the day. A transient error may hide
    // an accepted job: its count stays, and the row's resubmit is not counted again.
    if (outcome.outcome != OutcomeClass::transient) ratelimit::return_unaccepted(locked->state, 1);
    switch (outcome.outcome) {
      case OutcomeClass::accepted:
        break;
      case OutcomeClass::invalid_job:
        changed = exec(tx, sql::jobs_mark_failed, job.id, settings.instance,
                       error_json(outcome, attempt), 1);
        record.new_state = "failed";
        break;
      case OutcomeClass::transient:
        if (attempt >= job.max_attempts) {
          changed = exec(tx, sql::jobs_mark_failed, job.id, settings.instance,
                         error_json(outcome, attempt), 1);
          record.new_state = "failed";
        } else {
          auto delay = api::retry_delay(attempt, settings.retry_base, settings.retry_max, unit_random);
          changed = exec(tx, sql::jobs_requeue, job.id, settings.instance,
                         error_json(outcome, attempt), 1, to_epoch_ms(locked->now + delay),
                         std::string("retrying after a transient error"), true);
          record.new_state = "queued";
        }
        break;
      case OutcomeClass::rate_limited: {
        ratelimit::on_rate_limited(locked->state, outcome.window, observation, locked->now, settings.limiter);
        auto window = outcome.window.value_or(ratelimit::Window::rpm);
        auto until = window == ratelimit::Window::rpm       ? locked->state.rpm_paused_until
                     : window == ratelimit::Window::daily   ? locked->state.day_paused_until
                                                            : locked->state.parallel_paused_until;
        changed = exec(tx, sql::jobs_requeue, job.id, settings.instance, std::optional<std::string>(), 0,
                       to_epoch_ms(until.value_or(locked->now)),
                       std::string("rate limited (") + ratelimit::to_string(window) + ")", false);
        record.new_state = "queued";
        break;
      }
      case OutcomeClass::no_credit:
        changed = exec(tx, sql::jobs_requeue, job.id, settings.instance, std::optional<std::string>(), 0,
                       to_epoch_ms(locked->now), std::string("waiting for credit (402 from the API)"), false);
        // The API's word replaces the known balance (less the other unanswered claims),
        // so this row's own charge needs no refund.
        exec(tx, sql::account_set_balance, settings.account,
             static_cast<long long>(outcome.credits_available.value_or(0)),
             static_cast<long long>(settings.cost.standard_5), static_cast<long long>(settings.cost.standard_10),
             static_cast<long long>(settings.cost.professional_5),
             static_cast<long long>(settings.cost.professional_10));
        record.new_state = "queued";
        if (changed.affected_rows() == 0) record.new_state.clear();
        continue;
      case OutcomeClass::unauthorized:
        exec(tx, sql::account_halt, settings.account,
             "401 from the API: " + outcome.message.substr(0, 200));
        changed = exec(tx, sql::jobs_requeue, job.id, settings.instance, std::optional<std::string>(), 0,
                       to_epoch_ms(locked->now), std::string("dispatch halted: API key refused (401)"), false);
        record.new_state = "queued";
        break;
    }
    if (changed.affected_rows() == 0) {
      record.new_state.clear();  // our lease was gone, and whoever took it refunded the claim
    } else if (job.expected_cost > 0) {
      // Not sent on to generation: the charge taken at the claim comes back.
      exec(tx, sql::account_charge, settings.account, static_cast<long long>(-job.expected_cost));
    }
  }

  std::int64_t charge = 0;  // what the API charged beyond what the claim expected
  if (!accepted.empty()) {
    std::unordered_map<std::int64_t, std::size_t> by_id;
    for (auto i : accepted_index) by_id.emplace(inputs[i].job.id, i);
    auto submitted = exec(tx, sql::jobs_mark_submitted_many, json::serialize(accepted), settings.instance,
                          seconds(settings.first_poll) * (settings.webhook_url.empty() ? 1 : 2),
                          ids_array(accepted_job_ids));
    for (const auto& row : submitted) {
      const auto i = by_id.at(row[0].as<long long>());
      charge += row[1].as<long long>() - inputs[i].job.expected_cost;
      records[i].new_state = "submitted";
    }
    // Webhooks that beat their submit record waited in the inbox: apply them now.
    auto early = exec(tx, sql::inbox_take_many, json::serialize(accepted_ids));
    for (const auto& row : early) {
      Completion c{row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>(),
                   row[3].as<std::string>(), row[4].as<std::string>()};
      if (complete_locked(tx, settings, c).result != CompletionResult::applied) continue;
      for (auto i : accepted_index) {
        if (inputs[i].outcome.remote_id == c.remote_id && records[i].new_state == "submitted") {
          records[i].completed_early = true;
          records[i].new_state = c.status;
        }
      }
    }
  }
  if (locked) save_account(tx, settings, locked->state);
  if (charge != 0) exec(tx, sql::account_charge, settings.account, static_cast<long long>(charge));
  tx.commit();
  return records;
}

void record_response(pqxx::connection& connection, const QueueSettings& settings,
                     const api::Outcome& outcome, const ratelimit::Observation& observation) {
  pqxx::work tx(connection);
  auto locked = lock_account(tx, settings);
  if (outcome.http_status != 0) ratelimit::observe(locked.state, observation, locked.now);
  if (outcome.outcome == api::OutcomeClass::rate_limited) {
    ratelimit::on_rate_limited(locked.state, outcome.window, observation, locked.now, settings.limiter);
  }
  if (outcome.outcome == api::OutcomeClass::unauthorized) {
    exec(tx, sql::account_halt, settings.account,
         "401 from the API: " + outcome.message.substr(0, 200));
  }
  save_account(tx, settings, locked.state);
  tx.commit();
}

std::optional<TimePoint> take_request_token(pqxx::connection& connection, const QueueSettings& settings) {
  pqxx::work tx(connection);
  auto locked = lock_account(tx, settings);
  if (locked.halted) {
    tx.commit();
    return locked.now + std::chrono::seconds(5);
  }
  auto allowance = ratelimit::other_allowance(locked.state, locked.now, settings.limiter);
  if (allowance.count <= 0) {
    save_account(tx, settings, locked.state);
    tx.commit();
    return allowance.retry_at;
  }
  ratelimit::take_other(locked.state, locked.now, settings.limiter);
  save_account(tx, settings, locked.state);
  tx.commit();
  return std::nullopt;
}

PollClaim claim_polls(pqxx::connection& connection, const QueueSettings& settings, std::int64_t wanted) {
  PollClaim claim;
  pqxx::work tx(connection);
  claim.newly_stuck = static_cast<std::int64_t>(
      exec(tx, sql::jobs_flag_stuck, seconds(settings.poll_horizon)).affected_rows());
  auto locked = lock_account(tx, settings);
  if (locked.halted) {
    tx.commit();
    claim.retry_at = locked.now + std::chrono::seconds(5);
    return claim;
  }
  auto allowance = ratelimit::poll_allowance(locked.state, wanted, locked.now, settings.limiter);
  if (allowance.count > 0) {
    auto rows = exec(tx, sql::jobs_due_polls, static_cast<long long>(allowance.count));
    for (const auto& row : rows) {
      const int polls = row[2].as<int>();
      // Back off: 5 s, 10 s, 20 s, ... up to poll.max_interval_seconds.
      auto interval = std::min(seconds(settings.max_poll_interval), 5.0 * (1 << std::min(polls, 16)));
      exec(tx, sql::jobs_schedule_poll, row[0].as<long long>(), interval);
      claim.jobs.push_back({row[0].as<long long>(), row[1].as<std::string>()});
    }
    ratelimit::take_polls(locked.state, static_cast<std::int64_t>(claim.jobs.size()), locked.now,
                          settings.limiter);
  }
  auto next = exec1(tx, sql::jobs_next_poll_at);
  TimePoint next_due = next[0].is_null() ? TimePoint::max() : from_epoch_ms(next[0].as<long long>());
  claim.retry_at = allowance.count > 0 ? next_due : std::max(next_due, allowance.retry_at);
  save_account(tx, settings, locked.state);
  tx.commit();
  return claim;
}

CompletionOutcome apply_completion(pqxx::connection& connection, const QueueSettings& settings,
                                   const Completion& completion) {
  pqxx::work tx(connection);
  exec(tx, sql::completion_lock, completion.remote_id);
  auto out = complete_locked(tx, settings, completion);
  tx.commit();
  return out;
}

void set_balance(pqxx::connection& connection, const QueueSettings& settings, std::int64_t balance) {
  pqxx::work tx(connection);
  const auto& cost = settings.cost;
  exec(tx, sql::account_set_balance, settings.account, static_cast<long long>(balance),
       static_cast<long long>(cost.standard_5), static_cast<long long>(cost.standard_10),
       static_cast<long long>(cost.professional_5), static_cast<long long>(cost.professional_10));
  tx.commit();
}

std::int64_t release_leases(pqxx::connection& connection, const QueueSettings& settings) {
  pqxx::work tx(connection);
  const auto& cost = settings.cost;
  auto released = exec1(tx, sql::jobs_release_leases, settings.instance,
                        static_cast<long long>(cost.standard_5), static_cast<long long>(cost.standard_10),
                        static_cast<long long>(cost.professional_5),
                        static_cast<long long>(cost.professional_10));
  // Their claims were charged to the known balance and counted against the day; they
  // were never sent. (A row that was counted before this claim, for a lost answer, is
  // counted again by its next claim: day_counted is cleared with the count.)
  if (released[1].as<long long>() > 0) exec(tx, sql::account_charge, settings.account, -released[1].as<long long>());
  if (released[0].as<long long>() > 0) {
    auto locked = lock_account(tx, settings);
    ratelimit::return_unaccepted(locked.state, released[0].as<long long>());
    save_account(tx, settings, locked.state);
  }
  tx.exec("SELECT pg_notify('klingq_jobs', 'released')");
  tx.commit();
  return released[0].as<long long>();
}

void clear_halt(pqxx::connection& connection, const QueueSettings& settings) {
  pqxx::work tx(connection);
  exec(tx, sql::account_clear_halt, settings.account);
  tx.exec("SELECT pg_notify('klingq_jobs', 'resumed')");
  tx.commit();
}

Snapshot heartbeat(pqxx::connection& connection, const QueueSettings& settings,
                   const std::string& status_json) {
  Snapshot snapshot;
  pqxx::work tx(connection);
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  exec(tx, sql::instance_heartbeat, settings.instance, std::string(host),
       static_cast<int>(getpid()), std::string("0.1.0"), status_json);
  auto locked = lock_account(tx, settings);
  snapshot.limits = locked.state;
  snapshot.balance = locked.balance;
  snapshot.halted = locked.halted;
  snapshot.paused = locked.paused;
  save_account(tx, settings, locked.state);
  tx.commit();
  pqxx::work read(connection);
  exec(read, sql::job_counts_fold);
  for (const auto& row : exec(read, sql::jobs_by_state)) {
    snapshot.jobs_by_state.emplace_back(row[0].as<std::string>(), row[1].as<long long>());
    if (row[0].as<std::string>() == "dispatching" || row[0].as<std::string>() == "submitted")
      snapshot.in_flight += row[1].as<long long>();
  }
  snapshot.instances = exec1(read, sql::instances_live)[0].as<long long>();
  snapshot.stuck = exec1(read, sql::jobs_stuck_count)[0].as<long long>();
  read.commit();
  return snapshot;
}

void remove_instance(pqxx::connection& connection, const QueueSettings& settings) {
  pqxx::work tx(connection);
  exec(tx, sql::instance_remove, settings.instance);
  tx.commit();
}

}  // namespace klingq::dispatcher
