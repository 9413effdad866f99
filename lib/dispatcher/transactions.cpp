// See transactions.hpp: each function is one transaction, in which lib/db's statements
// carry out what the pure decisions (limiter, credit gate, transition) decide.
#include "dispatcher/transactions.hpp"

#include "credit/gate.hpp"
#include "db/account.hpp"
#include "db/generation.hpp"
#include "db/inbox.hpp"
#include "db/instances.hpp"
#include "db/jobs.hpp"
#include "dispatcher/transition.hpp"
#include "util/version.hpp"

#include <pqxx/pqxx>

#include <unistd.h>

#include <algorithm>
#include <unordered_map>

namespace klingq::dispatcher {
using ratelimit::AccountState;

namespace {

double seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

db::Prices prices_of(const QueueSettings& settings) {
  const auto& c = settings.cost;
  return {c.standard_5, c.standard_10, c.professional_5, c.professional_10};
}

TransitionPolicy policy_of(const QueueSettings& settings) {
  TransitionPolicy policy;
  policy.retry_base = settings.retry_base;
  policy.retry_max = settings.retry_max;
  policy.poll.first_poll = settings.first_poll;
  policy.poll.webhook_grace = settings.webhook_grace;
  policy.poll.max_interval = settings.max_poll_interval;
  policy.poll.min_interval = settings.min_poll_interval;
  policy.limiter = settings.limiter;
  return policy;
}

// The limiter state and the account row's columns are the same fields: one is the
// decision's view, the other the statement's.
AccountState limiter_state(const db::account::LimiterColumns& c) {
  AccountState s;
  s.rpm_limit = c.rpm_limit;
  s.rpm_remaining = c.rpm_remaining;
  s.rpm_reset_at = c.rpm_reset_at;
  s.rpm_next_at = c.rpm_next_at;
  s.poll_next_at = c.poll_next_at;
  s.rpm_paused_until = c.rpm_paused_until;
  s.day_limit = c.day_limit;
  s.day_used = c.day_used;
  s.day_reset_at = c.day_reset_at;
  s.day_paused_until = c.day_paused_until;
  if (c.day_start_ms) s.day_start_offset = std::chrono::milliseconds(*c.day_start_ms);
  s.day_reset_reported = c.day_reset_reported;
  s.day_submitted_at = c.day_submitted_at;
  s.capacity_held_at = c.capacity_held_at;
  s.parallel_limit = c.parallel_limit;
  s.parallel_paused_until = c.parallel_paused_until;
  s.limits_source = c.limits_source;
  return s;
}
db::account::LimiterColumns columns_of(const AccountState& s) {
  db::account::LimiterColumns c;
  c.rpm_limit = s.rpm_limit;
  c.rpm_remaining = s.rpm_remaining;
  c.rpm_reset_at = s.rpm_reset_at;
  c.rpm_next_at = s.rpm_next_at;
  c.poll_next_at = s.poll_next_at;
  c.rpm_paused_until = s.rpm_paused_until;
  c.day_limit = s.day_limit;
  c.day_used = s.day_used;
  c.day_reset_at = s.day_reset_at;
  c.day_paused_until = s.day_paused_until;
  if (s.day_start_offset) {
    c.day_start_ms = std::chrono::duration_cast<std::chrono::milliseconds>(*s.day_start_offset).count();
  }
  c.day_reset_reported = s.day_reset_reported;
  c.day_submitted_at = s.day_submitted_at;
  c.capacity_held_at = s.capacity_held_at;
  c.parallel_limit = s.parallel_limit;
  c.parallel_paused_until = s.parallel_paused_until;
  c.limits_source = s.limits_source;
  return c;
}

// The account row, locked, with its windows rolled to the database's `now`.
struct Locked {
  AccountState state;
  std::optional<std::int64_t> balance;
  bool halted = false;
  bool paused = false;
  TimePoint now;
  bool batch_budgets = false;  // klingq.batch_budgets has rows
};

Locked lock_account(pqxx::work& tx, const QueueSettings& settings) {
  auto row = db::account::lock(tx, settings.account);
  Locked locked{limiter_state(row.limits), row.balance, row.halted, row.paused, row.now, row.batch_budgets};
  ratelimit::roll(locked.state, locked.now, settings.limiter);
  return locked;
}

// The submits on the wire that the API may not have counted yet, which the limiter needs
// only to weigh a reported Remaining-Day (ratelimit::observe): counted after the lock,
// and only for answers that report one, so the hot path pays nothing for it.
void count_unanswered(pqxx::work& tx, Locked& locked, const ratelimit::Observation& observation) {
  if (observation.daily.remaining) locked.state.day_unanswered = db::jobs::count_dispatching(tx);
}

void save_account(pqxx::work& tx, const QueueSettings& settings, const AccountState& s, std::int64_t charge = 0) {
  db::account::save(tx, settings.account, columns_of(s), charge);
}

CompletionOutcome complete_locked(pqxx::work& tx, const QueueSettings& settings, const Completion& c) {
  CompletionOutcome out;
  auto next = next_after_completion(c, settings.download_outputs);
  if (!next) return out;  // not terminal: the webhook verifier and the poller never send one
  auto row = db::jobs::complete(tx, c.remote_id, to_string(next->state), c.url, c.metadata_json, next->error_json,
                                next->download_due, c.by_poll);
  if (row) {
    out.result = CompletionResult::applied;
    out.job_id = row->id;
    out.submit_to_complete_seconds = row->submit_to_complete_seconds;
    if (next->refund_cost && row->credit_cost) db::account::charge(tx, settings.account, -*row->credit_cost);
    db::jobs::notify(tx, "slot");  // every instance sees the freed parallel slot
    return out;
  }
  if (db::jobs::state_by_remote_id(tx, c.remote_id)) {
    out.result = CompletionResult::duplicate;
    return out;
  }
  // A webhook that beat its submit record: it waits for record_submits.
  db::inbox::put(tx, {c.remote_id, c.status, c.url, c.metadata_json, c.error});
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

ClaimedJob claimed_job(db::jobs::Claimed row, const config::CostTable& cost) {
  ClaimedJob job;
  job.id = row.id;
  job.spec.prompt = std::move(row.prompt);
  job.spec.duration = row.duration;
  job.spec.aspect_ratio = std::move(row.aspect_ratio);
  job.spec.version = std::move(row.version);
  job.spec.mode = std::move(row.mode);
  job.spec.options_json = std::move(row.options_json);
  job.spec.idempotency_key = std::move(row.idempotency_key);
  job.attempts = row.attempts;
  job.max_attempts = row.max_attempts;
  job.created_at = row.created_at;
  job.webhook_url = std::move(row.webhook_url);
  job.expected_cost = credit::expected_cost(cost, job.spec.mode, job.spec.duration);
  return job;
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
  db::account::ensure(tx, settings.account, settings.plan.rpm, settings.plan.parallel, settings.plan.daily);
  tx.commit();
}

// Holds that a freed request token cannot lift: while one holds, polls may use the
// request budget (ratelimit::note_claim).
static bool held_by_capacity(Hold hold) {
  return hold == Hold::parallel || hold == Hold::daily || hold == Hold::credit || hold == Hold::no_balance;
}

ClaimResult claim(pqxx::connection& connection, const QueueSettings& settings, std::int64_t wanted,
                  bool reap_leases) {
  ClaimResult result;
  pqxx::work tx(connection);
  const auto prices = prices_of(settings);
  // A crashed instance's claims were charged to the known balance: they give it back.
  // Their count against the day stays: the API may have accepted them, and their
  // resubmit is not counted again (klingq.jobs.day_counted).
  std::int64_t charge = 0;
  if (reap_leases) charge -= db::jobs::reap_expired(tx, prices);
  auto locked = lock_account(tx, settings);
  const auto now = locked.now;
  result.day_reset_assumed = ratelimit::day_reset_assumed(locked.state);
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
      db::jobs::count_in_flight(tx, std::max<std::int64_t>(0, locked.state.parallel_limit));
  auto allowance = ratelimit::submit_allowance(locked.state, in_flight, wanted, now, settings.limiter);
  if (allowance.count <= 0) {
    result.held_by = hold_of(allowance.blocked_by);
    result.retry_at = allowance.retry_at;
    ratelimit::note_claim(locked.state, held_by_capacity(result.held_by), now);
    return finish();  // with the roll of ended windows
  }
  if (!locked.balance) {
    result.held_by = Hold::no_balance;
    ratelimit::note_claim(locked.state, true, now);
    return finish();
  }
  // Claimed rows are charged at once (below), so the known balance already leaves out
  // what the unanswered ones will cost: no other instance can spend it twice.
  const std::int64_t budget = *locked.balance - charge - settings.credit_reserve;
  // Look a little past the allowance so cheaper jobs can use credit a dear one cannot.
  // When the budget pays for the allowance even at the dearest cost and no batch has a
  // budget, the first rows in line are the ones chosen: read (and lock) only those.
  const std::int64_t dearest =
      std::max({prices.standard_5, prices.standard_10, prices.professional_5, prices.professional_10});
  const bool ample = !locked.batch_budgets && (dearest <= 0 || budget / dearest >= allowance.count);
  const std::int64_t look =
      ample ? allowance.count : std::min<std::int64_t>(allowance.count * 4, allowance.count + 200);
  auto rows = db::jobs::select_claimable(tx, look, prices);
  std::vector<std::string> budget_batches;
  std::vector<std::int64_t> batch_left;
  if (locked.batch_budgets) {
    for (auto& [batch, left] : db::batches::budgets_remaining(tx, prices)) {
      budget_batches.push_back(batch);
      batch_left.push_back(left);
    }
  }
  std::vector<credit::Candidate> candidates;
  for (const auto& row : rows) {
    credit::Candidate candidate{row.expected_cost, row.run_after};
    if (row.batch) {
      auto found = std::find(budget_batches.begin(), budget_batches.end(), *row.batch);
      if (found != budget_batches.end()) candidate.batch_budget = static_cast<int>(found - budget_batches.begin());
    }
    candidates.push_back(candidate);
  }
  auto choice = credit::choose(candidates, static_cast<std::size_t>(allowance.count), budget, now,
                               settings.starvation, batch_left);
  for (int spent : choice.spent_batches) {
    db::jobs::mark_batch_waiting(tx, budget_batches[static_cast<std::size_t>(spent)]);
  }
  std::vector<std::int64_t> ids;
  std::int64_t counted_before = 0;  // resubmits of rows whose lost answer was counted
  for (auto index : choice.chosen) {
    ids.push_back(rows[index].id);
    if (rows[index].day_counted) ++counted_before;
  }

  if (!ids.empty()) {
    for (auto& row : db::jobs::claim(tx, ids, settings.instance, seconds(settings.lease), settings.webhook_url)) {
      result.jobs.push_back(claimed_job(std::move(row), settings.cost));
    }
    ratelimit::take_submits(locked.state, static_cast<std::int64_t>(result.jobs.size()), now, settings.limiter);
    // Each is a request, but a row already counted is not another job of the day. (The
    // allowance above still counted it: at the day's cap such a row waits for the reset
    // like a new one, the cautious side.)
    ratelimit::return_unaccepted(locked.state, counted_before);
    for (const auto& job : result.jobs) charge += job.expected_cost;
  }

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
  ratelimit::note_claim(locked.state, held_by_capacity(result.held_by), now);
  return finish();
}

std::vector<SubmitRecord> record_submits(pqxx::connection& connection, const QueueSettings& settings,
                                         const std::vector<SubmitInput>& inputs, const GenerationModel& model) {
  std::vector<SubmitRecord> records(inputs.size());
  pqxx::work tx(connection);
  using api::OutcomeClass;
  const auto policy = policy_of(settings);
  // The shared account row is every instance's hot spot: accepted submits whose responses
  // say nothing about limits (an unlimited plan) and cost what the claim charged for
  // them leave it alone.
  auto observed = [](const ratelimit::Observation& o) {
    return o.rpm.any() || o.daily.any() || o.parallel.any() || o.retry_after.has_value();
  };
  const bool touch_account = std::any_of(inputs.begin(), inputs.end(), [&](const SubmitInput& in) {
    return in.outcome.outcome != OutcomeClass::accepted || observed(in.observation);
  });
  std::vector<std::string> accepted_remote_ids;  // for the locks and the inbox
  for (const auto& in : inputs) {
    if (in.outcome.outcome == OutcomeClass::accepted) accepted_remote_ids.push_back(in.outcome.remote_id);
  }
  // Serialises with a webhook for the same remote id (apply_completion), so an early
  // webhook is either in the inbox below or finds the row submitted.
  if (!accepted_remote_ids.empty()) db::remote::lock_many(tx, accepted_remote_ids);

  // Without the lock nothing below reads or changes the account: every input is an
  // accepted submit without limit headers, whose transition touches no account field.
  std::optional<Locked> locked;
  if (touch_account) {
    locked = lock_account(tx, settings);
    for (const auto& in : inputs) {
      if (!in.observation.daily.remaining) continue;
      count_unanswered(tx, *locked, in.observation);
      break;  // once for the group, right after the lock
    }
  }
  AccountState scratch;
  auto& account = locked ? locked->state : scratch;
  const auto now = locked ? locked->now : Clock::now();
  std::vector<db::jobs::Accepted> accepted;  // written together below
  std::unordered_map<std::int64_t, std::pair<std::size_t, std::int64_t>> accepted_by_id;  // input, extra charge
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const auto& [job, outcome, observation, unit_random] = inputs[i];
    const JobFacts facts{job.attempts, job.max_attempts, job.expected_cost, !job.webhook_url.empty(),
                         model.find({job.spec.mode, job.spec.duration, job.spec.version.value_or("")})};
    auto next = next_after_submit(facts, outcome, observation, account, now, policy, unit_random);
    if (next.state == JobState::submitted) {
      accepted.push_back({job.id, outcome.remote_id, next.cost, seconds(*next.next_poll_at - now)});
      accepted_by_id.emplace(job.id, std::pair{i, next.extra_charge});
      continue;
    }
    auto& record = records[i];
    if (next.halt_reason) db::account::halt(tx, settings.account, *next.halt_reason);
    bool changed = false;
    if (next.state == JobState::failed) {
      changed = db::jobs::mark_failed(tx, job.id, settings.instance, *next.error_json, next.attempts_spent);
    } else {
      changed = db::jobs::requeue(tx, job.id, settings.instance, next.error_json, next.attempts_spent,
                                  next.run_after, next.wait_reason, next.day_counted);
    }
    if (next.balance_override) db::account::set_balance(tx, settings.account, *next.balance_override, prices_of(settings));
    // Empty: our lease was gone, and whoever took the row refunded its claim.
    record.new_state = changed ? to_string(next.state) : "";
    if (auto refund = refund_after_write(next, changed); refund > 0) db::account::charge(tx, settings.account, -refund);
  }

  std::int64_t charge = 0;  // what the API charged beyond what the claim expected
  if (!accepted.empty()) {
    for (auto id : db::jobs::mark_submitted(tx, accepted, settings.instance)) {
      const auto [i, extra_charge] = accepted_by_id.at(id);
      charge += extra_charge;
      records[i].new_state = to_string(JobState::submitted);
    }
    // Webhooks that beat their submit record waited in the inbox: apply them now.
    for (auto& early : db::inbox::take(tx, accepted_remote_ids)) {
      Completion c{early.remote_id, early.status, early.url, early.metadata_json, early.error};
      if (complete_locked(tx, settings, c).result != CompletionResult::applied) continue;
      for (const auto& [id, entry] : accepted_by_id) {
        const auto i = entry.first;
        if (inputs[i].outcome.remote_id == c.remote_id && records[i].new_state == "submitted") {
          records[i].completed_early = true;
          records[i].new_state = c.status;
        }
      }
    }
  }
  if (locked) save_account(tx, settings, locked->state);
  if (charge != 0) db::account::charge(tx, settings.account, charge);
  tx.commit();
  return records;
}

void record_response(pqxx::connection& connection, const QueueSettings& settings,
                     const api::Outcome& outcome, const ratelimit::Observation& observation) {
  pqxx::work tx(connection);
  auto locked = lock_account(tx, settings);
  count_unanswered(tx, locked, observation);
  auto halt = after_response(outcome, observation, locked.state, locked.now, policy_of(settings));
  if (halt) db::account::halt(tx, settings.account, *halt);
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

PollClaim claim_polls(pqxx::connection& connection, const QueueSettings& settings, std::int64_t wanted,
                      const GenerationModel& model) {
  PollClaim claim;
  pqxx::work tx(connection);
  const auto policy = policy_of(settings);
  claim.newly_stuck = db::jobs::flag_stuck(tx, seconds(settings.poll_horizon));
  auto locked = lock_account(tx, settings);
  if (locked.halted) {
    tx.commit();
    claim.retry_at = locked.now + std::chrono::seconds(5);
    return claim;
  }
  auto allowance = ratelimit::poll_allowance(locked.state, wanted, locked.now, settings.limiter);
  if (allowance.count > 0) {
    for (auto& due : db::jobs::select_due_polls(tx, allowance.count)) {
      const PollFacts facts{due.submitted_at, due.polls + 1, due.webhook,
                            model.find({due.mode, due.duration, due.version})};
      db::jobs::schedule_poll(tx, due.id, seconds(next_poll_at(facts, locked.now, policy.poll) - locked.now));
      claim.jobs.push_back({due.id, std::move(due.remote_id)});
    }
    ratelimit::take_polls(locked.state, static_cast<std::int64_t>(claim.jobs.size()), locked.now,
                          settings.limiter);
  }
  TimePoint next_due = db::jobs::next_poll_at(tx).value_or(TimePoint::max());
  claim.retry_at = allowance.count > 0 ? next_due : std::max(next_due, allowance.retry_at);
  save_account(tx, settings, locked.state);
  tx.commit();
  return claim;
}

GenerationModel refresh_generation_model(pqxx::connection& connection, const QueueSettings& settings) {
  pqxx::work tx(connection);
  db::generation::refresh(tx, seconds(settings.generation_window), settings.generation_samples);
  std::map<GenerationKey, GenerationTimes> kinds;
  for (const auto& row : db::generation::select(tx)) {
    auto ms = [](std::int64_t v) { return std::chrono::duration_cast<Duration>(std::chrono::milliseconds(v)); };
    kinds[{row.mode, row.duration, row.version}] =
        GenerationTimes{row.samples, ms(row.p10_ms), ms(row.p25_ms), ms(row.p50_ms),
                        ms(row.p75_ms), ms(row.p90_ms), ms(row.p99_ms)};
  }
  tx.commit();
  return GenerationModel(std::move(kinds));
}

CompletionOutcome apply_completion(pqxx::connection& connection, const QueueSettings& settings,
                                   const Completion& completion) {
  pqxx::work tx(connection);
  db::remote::lock(tx, completion.remote_id);
  auto out = complete_locked(tx, settings, completion);
  tx.commit();
  return out;
}

void set_balance(pqxx::connection& connection, const QueueSettings& settings, std::int64_t balance) {
  pqxx::work tx(connection);
  db::account::set_balance(tx, settings.account, balance, prices_of(settings));
  tx.commit();
}

std::int64_t release_leases(pqxx::connection& connection, const QueueSettings& settings) {
  pqxx::work tx(connection);
  auto released = db::jobs::release_leases(tx, settings.instance, prices_of(settings));
  // Their claims were charged to the known balance and counted against the day; they
  // were never sent. (A row that was counted before this claim, for a lost answer, is
  // counted again by its next claim: day_counted is cleared with the count.)
  if (released.expected_cost > 0) db::account::charge(tx, settings.account, -released.expected_cost);
  if (released.count > 0) {
    auto locked = lock_account(tx, settings);
    ratelimit::return_unaccepted(locked.state, released.count);
    save_account(tx, settings, locked.state);
  }
  db::jobs::notify(tx, "released");
  tx.commit();
  return released.count;
}

void clear_halt(pqxx::connection& connection, const QueueSettings& settings) {
  pqxx::work tx(connection);
  db::account::clear_halt(tx, settings.account);
  db::jobs::notify(tx, "resumed");
  tx.commit();
}

bool clear_proxy_halt(pqxx::connection& connection, const QueueSettings& settings) {
  pqxx::work tx(connection);
  const bool cleared = db::account::clear_halt_matching(tx, settings.account, proxy_halt_prefix);
  if (cleared) db::jobs::notify(tx, "resumed");
  tx.commit();
  return cleared;
}

Snapshot heartbeat(pqxx::connection& connection, const QueueSettings& settings, const std::string& status_json) {
  Snapshot snapshot;
  pqxx::work tx(connection);
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  db::instances::upsert(tx, settings.instance, std::string(host), static_cast<int>(getpid()), version(), status_json);
  auto locked = lock_account(tx, settings);
  snapshot.limits = locked.state;
  snapshot.balance = locked.balance;
  snapshot.halted = locked.halted;
  snapshot.paused = locked.paused;
  save_account(tx, settings, locked.state);
  tx.commit();
  pqxx::work read(connection);
  db::job_counts::fold(read);
  for (auto& [state, count] : db::job_counts::by_state(read)) {
    if (state == "dispatching" || state == "submitted") snapshot.in_flight += count;
    snapshot.jobs_by_state.emplace_back(std::move(state), count);
  }
  snapshot.instances = db::instances::count_live(read);
  snapshot.stuck = db::jobs::count_stuck(read);
  read.commit();
  return snapshot;
}

void remove_instance(pqxx::connection& connection, const QueueSettings& settings) {
  pqxx::work tx(connection);
  db::instances::remove(tx, settings.instance);
  tx.commit();
}

}  // namespace klingq::dispatcher
