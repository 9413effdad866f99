// See transactions.hpp: each function is one transaction, in which lib/db's statements
// carry out what the pure decisions (limiter, credit gate, transition) decide.
#include "dispatcher/transactions.hpp"

#include "credit/gate.hpp"
#include "db/account.hpp"
#include "db/batches.hpp"
#include "db/generation.hpp"
#include "db/inbox.hpp"
#include "db/instances.hpp"
#include "db/jobs.hpp"
#include "dispatcher/transition.hpp"
#include "shares/shares.hpp"
#include "util/version.hpp"

#include <pqxx/pqxx>

#include <unistd.h>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

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
    if (next->refund_cost && row->credit_cost) {
      db::account::charge(tx, settings.account, -*row->credit_cost);
      out.refunded = *row->credit_cost;
    }
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

constexpr const char* credit_wait_reason =
    "waiting for credit: the known balance less credits.reserve does not cover it (klingq limits)";

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

// --- fair shares between batches (shares/shares.hpp) ---

// One batch the claim looked at, across the priority levels it went through.
struct ShareEntry {
  shares::Batch batch;
  shares::Caps caps;
  std::int64_t taken = 0;  // submits it got in this claim
  bool looked_short = false;  // it gave every runnable row it had, or fewer than planned
};

struct Picked {
  std::vector<std::int64_t> ids;      // in claim order
  std::int64_t counted_before = 0;    // rows whose lost answer was counted against the day
  bool short_of_credit = false;
  bool queue_empty = false;           // fewer runnable rows than the allowance, caps aside
  std::vector<ShareEntry> entries;
  double vtime = 0;
  std::int64_t today = 0;
};

// A claim looks at no more than this many priority levels: a level all of whose batches
// are held (paused, capped, spent) hands its submits to the next one down.
constexpr int max_levels = 3;

// The rows this claim takes: the allowance split between the runnable batches of the top
// runnable priority by their shares (shares::plan), the credit gate over the result, all
// from the state in klingq.batches read under the account lock, so every instance keeps
// the same shares. Looks at batches in pass order and stops after a few more than it has
// submits to give: the cost follows the allowance, not the queue.
Picked pick_by_shares(pqxx::work& tx, const QueueSettings& settings, const Locked& locked, std::int64_t allowance,
                      std::int64_t budget, const db::Prices& prices, bool sweep) {
  Picked out;
  out.today = shares::day_key(locked.state.day_reset_at, locked.now);
  out.vtime = db::batches::share_clock(tx);
  std::int64_t cheapest = 0;
  for (auto price : {prices.standard_5, prices.standard_10, prices.professional_5, prices.professional_10}) {
    if (price > 0 && (cheapest == 0 || price < cheapest)) cheapest = price;
  }
  std::unordered_map<std::string, std::int64_t> budget_left;  // by batch label
  if (locked.batch_budgets) {
    for (auto& [batch, left] : db::batches::budgets_remaining(tx, prices)) budget_left[batch] = left;
  }
  std::unordered_map<std::string, std::size_t> entry_of;  // key -> out.entries
  std::int64_t remaining = allowance;
  std::optional<int> below;
  for (int level = 0; level < max_levels && remaining > 0; ++level) {
    const auto priority = db::batches::top_priority(tx, below);
    if (!priority) {
      out.queue_empty = true;
      break;
    }
    below = *priority;
    // The candidate batches of this level, a page at a time until their room covers the
    // submits left (or no batch is left).
    std::vector<std::size_t> level_entries;
    std::int64_t room_total = 0;
    bool more = true;
    std::int64_t offset = 0;  // into the walk, lowest pass first
    // The plan serves shares::max_served batches at a time, so each batch's rows are
    // counted up to its likely part: a batch below that count is known to the row.
    const auto served = std::min(remaining, static_cast<std::int64_t>(shares::max_served));
    const std::int64_t count_to = (remaining + served - 1) / served;
    // The first page looks for as many batches as the plan serves; a later one (the first
    // held batches short of rows) for a batch per submit still to give.
    std::int64_t wanted_hits = std::min(remaining, served) + 8;
    std::int64_t window = 2 * wanted_hits + 32;  // batches read per page, growing
    for (int page = 0; page < 8 && more && room_total < remaining; ++page, window *= 4) {
      if (page > 0) wanted_hits = remaining - room_total + 8;
      auto rows = db::batches::window(tx, window, offset);
      more = static_cast<std::int64_t>(rows.size()) == window;
      std::vector<std::string> keys;
      for (const auto& r : rows) keys.push_back(r.key);
      auto hits = db::batches::runnable(tx, keys, *priority, wanted_hits, count_to);
      // The probes stopped at the last hit when they found enough: the next page starts
      // right after it, else after the whole window.
      std::vector<std::pair<db::batches::Candidate, std::int64_t>> found;  // with its rows counted
      std::size_t h = 0;
      std::size_t probed = rows.size();
      for (std::size_t r = 0; r < rows.size() && h < hits.size(); ++r) {
        if (rows[r].key != hits[h].key) continue;
        found.emplace_back(rows[r], hits[h].rows);
        ++h;
        if (static_cast<std::int64_t>(hits.size()) == wanted_hits && h == hits.size()) probed = r + 1;
      }
      if (probed < rows.size()) more = true;
      offset += static_cast<std::int64_t>(probed);
      std::vector<std::string> capped_keys;
      for (auto& [c, counted] : found) {
        auto [it, fresh] = entry_of.try_emplace(c.key, out.entries.size());
        if (fresh) {
          ShareEntry e;
          e.batch.key = c.key;
          e.batch.weight = c.weight;
          e.batch.pass = c.pass;
          e.caps.max_parallel = c.max_parallel;
          e.caps.daily_cap = c.daily_cap;
          e.caps.day_count = c.day_count;
          e.caps.day_key = c.day_key;
          e.caps.cheapest_cost = cheapest;
          if (c.budget && !c.unlabelled) {
            auto left = budget_left.find(c.key);
            e.caps.budget_left = left == budget_left.end() ? *c.budget : left->second;
          }
          if (c.max_parallel) capped_keys.push_back(c.key);
          out.entries.push_back(std::move(e));
        }
        auto& e = out.entries[it->second];
        e.batch.priority = *priority;
        // Its rows at this level: exact below count_to, else at least that many.
        if (counted < count_to) {
          e.caps.available = counted + e.taken;
        } else {
          e.caps.available.reset();
        }
        e.looked_short = false;
        level_entries.push_back(it->second);
      }
      for (auto& [key, n] : db::batches::in_flight(tx, capped_keys)) out.entries[entry_of.at(key)].caps.in_flight = n;
      room_total = 0;
      for (auto i : level_entries) {
        const auto& e = out.entries[i];
        const auto room = shares::room_of(e.caps, out.today);
        if (room == shares::unlimited) {
          room_total = shares::unlimited;
          break;
        }
        room_total += std::max<std::int64_t>(0, room - e.taken);
      }
    }
    if (level_entries.empty()) continue;  // every batch of this level is paused: the next one down

    // Plan, fetch the planned rows, and plan again if a batch had fewer than planned or
    // its budget held some back: a batch that cannot use its share leaves it to the others.
    std::vector<shares::Batch> batches;
    std::vector<db::batches::Head> heads;
    shares::Plan plan;
    std::vector<std::size_t> seq;  // index into heads, in pick order
    credit::Choice choice;
    for (int round = 0; round < 3; ++round) {
      batches.clear();
      for (auto i : level_entries) {
        auto& e = out.entries[i];
        auto b = e.batch;
        const auto room = shares::room_of(e.caps, out.today);
        b.room = room == shares::unlimited ? room : std::max<std::int64_t>(0, room - e.taken);
        batches.push_back(b);
      }
      plan = shares::plan(batches, remaining, out.vtime);
      std::vector<std::string> keys;
      std::vector<std::int64_t> counts;
      for (std::size_t j = 0; j < batches.size(); ++j) {
        if (plan.count[j] == 0) continue;
        keys.push_back(batches[j].key);
        counts.push_back(plan.count[j]);
      }
      heads = db::batches::heads(tx, keys, counts, *priority, prices);
      // The rows of each batch, in its order, dealt out in the order of the picks.
      std::unordered_map<std::string, std::vector<std::size_t>> rows_of;
      for (std::size_t h = 0; h < heads.size(); ++h) rows_of[heads[h].key].push_back(h);
      bool replan = false;
      for (std::size_t j = 0; j < batches.size(); ++j) {
        const auto got = static_cast<std::int64_t>(rows_of[batches[j].key].size());
        if (got < plan.count[j]) {
          auto& e = out.entries[level_entries[j]];
          e.caps.available = got + e.taken;
          e.looked_short = true;
          replan = true;
        }
      }
      seq.clear();
      std::unordered_map<std::string, std::size_t> dealt;
      for (auto j : plan.picks) {
        auto& list = rows_of[batches[j].key];
        auto& next = dealt[batches[j].key];
        if (next < list.size()) seq.push_back(list[next++]);
      }
      // The credit gate over the rows in pick order, with each budgeted batch's credit.
      std::vector<std::string> budget_keys;
      std::vector<std::int64_t> batch_left;
      std::vector<credit::Candidate> candidates;
      for (auto h : seq) {
        credit::Candidate candidate{heads[h].expected_cost, heads[h].run_after};
        const auto& e = out.entries[entry_of.at(heads[h].key)];
        if (e.caps.budget_left) {
          auto found = std::find(budget_keys.begin(), budget_keys.end(), heads[h].key);
          if (found == budget_keys.end()) {
            budget_keys.push_back(heads[h].key);
            batch_left.push_back(*e.caps.budget_left);
            found = budget_keys.end() - 1;
          }
          candidate.batch_budget = static_cast<int>(found - budget_keys.begin());
        }
        candidates.push_back(candidate);
      }
      choice = credit::choose(candidates, static_cast<std::size_t>(remaining), budget, locked.now,
                              settings.starvation, batch_left);
      if (choice.short_of_credit) {
        // The rows in line that the balance could not pay for say so (a zero balance used
        // to leave them queued with no reason at all); the claim that takes one clears it.
        std::vector<bool> chosen(seq.size(), false);
        for (auto index : choice.chosen) chosen[index] = true;
        std::vector<std::int64_t> waiting;
        std::unordered_set<std::int64_t> taken_ids;
        for (std::size_t i = 0; i < seq.size(); ++i) {
          if (chosen[i]) {
            taken_ids.insert(heads[seq[i]].id);
          } else if (candidates[i].batch_budget < 0) {
            waiting.push_back(heads[seq[i]].id);
          }
        }
        // The plan holds only as many rows as the request budget allows now (one, at a
        // low rate): the next rows in line are told too, a page at a time.
        for (const auto& row : db::jobs::select_claimable(tx, 200, prices)) {
          const auto key = row.batch.value_or("");
          if (taken_ids.count(row.id) ||
              std::find(budget_keys.begin(), budget_keys.end(), key) != budget_keys.end()) {
            continue;
          }
          waiting.push_back(row.id);
        }
        db::jobs::mark_credit_waiting(tx, waiting, credit_wait_reason);
      }
      for (int spent : choice.spent_batches) {
        auto& e = out.entries[entry_of.at(budget_keys[static_cast<std::size_t>(spent)])];
        e.caps.budget_left = 0;  // this claim gives it nothing more
        replan = true;
      }
      if (!replan || choice.short_of_credit || round == 2) break;
    }
    // Their queued jobs say why they wait (a statement per spent batch: only when the gate
    // found one, and for every spent batch once a second).
    for (auto i : level_entries) {
      const auto& e = out.entries[i];
      if (!e.caps.budget_left || e.batch.key.empty()) continue;
      const bool spent_now = *e.caps.budget_left == 0;
      const bool spent_before = e.caps.cheapest_cost > 0 && e.caps.budget_left < e.caps.cheapest_cost;
      if (spent_now || (spent_before && sweep)) db::jobs::mark_batch_waiting(tx, e.batch.key);
    }
    // What was taken, in order: the ids, and the passes moved by exactly those.
    std::vector<std::size_t> taken;  // index into batches
    for (auto c : choice.chosen) {
      const auto& head = heads[seq[c]];
      out.ids.push_back(head.id);
      if (head.day_counted) ++out.counted_before;
      for (std::size_t j = 0; j < batches.size(); ++j) {
        if (batches[j].key == head.key) {
          taken.push_back(j);
          break;
        }
      }
    }
    auto advanced = shares::advance(batches, taken, out.vtime);
    out.vtime = advanced.vtime;
    for (std::size_t j = 0; j < batches.size(); ++j) out.entries[level_entries[j]].batch.pass = advanced.pass[j];
    for (auto j : taken) ++out.entries[level_entries[j]].taken;
    // A batch that gave every runnable row it had may be out of jobs.
    for (auto i : level_entries) {
      auto& e = out.entries[i];
      if (e.caps.available && e.taken >= *e.caps.available) e.looked_short = true;
    }
    remaining -= static_cast<std::int64_t>(taken.size());
    budget -= choice.reserved;
    if (choice.short_of_credit) {
      out.short_of_credit = true;
      break;
    }
  }
  return out;
}

// Writes what the claim changed in the share state, after its rows left 'queued'; the
// batches that ran out of queued jobs leave the walk. Once a second (with the lease
// reaper) the lowest-pass active batches are checked too: jobs can leave the queue by
// other ways (cancel, delete), and such a batch would be looked at by every claim.
// Locks: the batches' rows in key order (the jobs triggers take them in that order too),
// then the sweep's without waiting; only then are the jobs looked at.
void save_shares(pqxx::work& tx, const Picked& picked, bool sweep) {
  std::vector<db::batches::Saved> saved;
  std::vector<std::string> check;
  for (const auto& e : picked.entries) {
    if (e.taken > 0) {
      saved.push_back({e.batch.key, e.batch.pass, shares::day_count_after(e.caps, picked.today, e.taken), picked.today});
    }
    // A batch that gave all its runnable rows, or had fewer than planned, may be out of
    // jobs; one that had more than it was counted to is found by the sweep if it ran out
    // anyway (at most a probe per claim until then).
    if (e.looked_short) check.push_back(e.batch.key);
  }
  // Batches that ran short are looked at below, under their row lock (taken without
  // waiting: a batch whose row is held is being refilled). Locked with the saved ones, all
  // in key order (the statements sort), before anything else.
  if (!check.empty()) {
    std::vector<std::string> keys = check;
    for (const auto& b : saved) keys.push_back(b.key);
    auto held = db::batches::lock(tx, keys);
    std::erase_if(check, [&](const std::string& k) { return std::find(held.begin(), held.end(), k) == held.end(); });
  }
  if (!saved.empty()) db::batches::save_shares(tx, saved, picked.vtime);
  if (sweep) {
    for (auto& key : db::batches::lock_lowest_active(tx, 32)) {
      if (std::find(check.begin(), check.end(), key) == check.end()) check.push_back(key);
    }
  }
  db::batches::deactivate_idle(tx, check);
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
  auto picked = pick_by_shares(tx, settings, locked, allowance.count, budget, prices, reap_leases);
  const auto& ids = picked.ids;
  const std::int64_t counted_before = picked.counted_before;  // resubmits of rows whose lost answer was counted

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
  save_shares(tx, picked, reap_leases);

  // Why fewer than wanted: credit, an empty queue, or the tightest limit.
  const auto got = static_cast<std::int64_t>(result.jobs.size());
  if (got < wanted) {
    if (picked.short_of_credit) {
      result.held_by = Hold::credit;
    } else if (picked.queue_empty) {
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
  // The per-batch counts are folded in a transaction of their own: it holds the fold's
  // lock only as long as the fold takes.
  pqxx::work fold(connection);
  const bool folded = db::job_counts::fold_batch_counts(fold);
  fold.commit();
  pqxx::work read(connection);
  db::job_counts::fold(read);
  for (auto& [state, count] : db::job_counts::by_state(read)) {
    if (state == "dispatching" || state == "submitted") snapshot.in_flight += count;
    snapshot.jobs_by_state.emplace_back(std::move(state), count);
  }
  snapshot.instances = db::instances::count_live(read);
  snapshot.publisher = db::instances::publisher(read).value_or(settings.instance) == settings.instance;
  snapshot.stuck = db::jobs::count_stuck(read);
  read.commit();
  // The claim's walk starts where its pass updates leave dead index entries (012).
  pqxx::nontransaction vacuum(connection);
  db::batches::vacuum(vacuum);
  if (folded) db::job_counts::vacuum_batch_counts(vacuum);
  return snapshot;
}

void remove_instance(pqxx::connection& connection, const QueueSettings& settings) {
  pqxx::work tx(connection);
  db::instances::remove(tx, settings.instance);
  tx.commit();
}

}  // namespace klingq::dispatcher
