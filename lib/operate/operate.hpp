// The operator's actions on the queue, carried out in one place for every front end: the
// CLI (klingq pause, resume, cancel, retry) and the console's POST routes call these, so
// the two cannot drift. Each runs in the caller's transaction, does what it can, says
// why it left the rest alone, and records who asked and why in klingq.operator_events.
// Wording of refusals is shared too: the CLI prints them, the console returns them.
#pragma once

#include "db/batches.hpp"

#include <pqxx/transaction_base>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace klingq::operate {

// Who acts: "cli:USER@HOST", "console:operator#2" (never a token).
struct Actor {
  std::string who;
  std::optional<std::string> reason;  // what the operator gave as the why, if anything
};
// The CLI's actor for this process: cli:$USER@hostname.
Actor cli_actor(std::optional<std::string> reason = std::nullopt);

// One job (id set) or a group of jobs of one state (count set) left alone, and why.
struct Refusal {
  std::optional<std::int64_t> id;
  std::optional<std::string> state;  // the job's state; none for an unknown id
  std::int64_t count = 1;
  std::string reason;   // "already accepted and charged by the API", "no such job", ...
  std::string message;  // one line for a person: "job 7 not cancelled: no such job"
};

struct Outcome {
  std::vector<std::int64_t> done;  // ids acted on, ascending
  std::vector<Refusal> refused;
  bool empty_batch = false;                  // a batch action found no job of the batch
  std::optional<std::string> halted_reason;  // pause/resume: a 401 halt still holds
  bool partial() const { return !refused.empty() || empty_batch; }
};

// Dispatch held / released for every instance (the shared account row).
Outcome pause(pqxx::transaction_base& tx, const Actor& actor);
Outcome resume(pqxx::transaction_base& tx, const Actor& actor);

// Queued jobs, and dispatching ones whose lease expired, become cancelled.
Outcome cancel_jobs(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids, const Actor& actor);
// `batch` nullopt: the unlabelled jobs (batch NULL), as `klingq batch ... --unlabelled`.
Outcome cancel_batch(pqxx::transaction_base& tx, const std::optional<std::string>& batch, const Actor& actor);

// Failed or cancelled jobs back to queued (klingq retry).
Outcome retry_jobs(pqxx::transaction_base& tx, const std::vector<std::int64_t>& ids, const Actor& actor);
// The failed jobs (failed_only) or the failed and cancelled ones, of `batch` when given.
Outcome retry_selection(pqxx::transaction_base& tx, const std::optional<std::string>& batch, bool failed_only,
                        const Actor& actor);
// The same for the unlabelled jobs only (batch NULL).
Outcome retry_unlabelled(pqxx::transaction_base& tx, bool failed_only, const Actor& actor);

// A batch's settings (klingq.batches, lib/db/batches.hpp): what is given changes, the
// rest is kept; returns the row as it is now (klingq batch set).
db::batches::Settings set_batch(pqxx::transaction_base& tx, const std::optional<std::string>& batch,
                                std::optional<int> weight, const db::batches::Change<std::int64_t>& max_parallel,
                                const db::batches::Change<std::int64_t>& daily_cap,
                                const db::batches::Change<std::int64_t>& budget, const Actor& actor);
// A batch's credit cap: set to `budget` credits, or removed (nullopt). Refused (with
// nothing changed) when removing a cap the batch does not have.
Outcome set_budget(pqxx::transaction_base& tx, const std::string& batch, std::optional<std::int64_t> budget,
                   const Actor& actor);
// One batch held (its share goes to the others) or released (klingq batch pause/resume).
Outcome pause_batch(pqxx::transaction_base& tx, const std::optional<std::string>& batch, bool paused,
                    const Actor& actor);

}  // namespace klingq::operate
