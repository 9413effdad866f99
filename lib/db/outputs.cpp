// The download statements: see outputs.hpp and schema/006_outputs.sql.
#include "db/outputs.hpp"

#include <pqxx/pqxx>

namespace klingq::db {
namespace sql {

// A claim is owned by a live instance when that instance heartbeats (every few
// seconds; see queue.cpp's instance_heartbeat). A dead owner's claim is due at once
// instead of after the whole lease, so a restarted klingqd resumes within seconds.
#define KLINGQ_OWNER_DEAD                                                                      \
  "(output_owner IS NOT NULL AND NOT EXISTS (SELECT 1 FROM klingq.instances i "                \
  "WHERE i.id = output_owner AND i.heartbeat_at > now() - interval '30 seconds'))"

// Out of attempts but never reported (its instance died mid-attempt), or no longer a
// downloadable row (state or url changed by hand): stop tracking it.
constexpr const char* jobs_output_give_up_stale =
    "WITH stale AS ("
    "  UPDATE klingq.jobs SET output_next_at = NULL, output_owner = NULL,"
    "    output_error = CASE WHEN state = 'completed' AND url IS NOT NULL THEN jsonb_build_object("
    "      'last', jsonb_build_object('class', 'abandoned', 'attempt', output_attempts, 'at', now(),"
    "                                 'message', 'the last attempt never finished (its klingqd stopped or was killed)'),"
    "      'history', coalesce(output_error -> 'history', '[]'::jsonb),"
    "      'gave_up', true) ELSE output_error END"
    "  WHERE output_next_at IS NOT NULL AND (output_next_at <= now() OR " KLINGQ_OWNER_DEAD ")"
    "    AND (output_attempts >= $1 OR state <> 'completed' OR url IS NULL)"
    "  RETURNING id, state, url IS NOT NULL AS had_url)"
    "INSERT INTO klingq.job_events (job_id, from_state, to_state, instance, detail) "
    "SELECT id, state, state, $2, '{\"download\": \"gave_up\", \"reason\": \"abandoned\"}'::jsonb FROM stale "
    "WHERE state = 'completed' AND had_url";

constexpr const char* jobs_output_claim =
    "WITH due AS ("
    "  SELECT id FROM klingq.jobs"
    "  WHERE output_next_at IS NOT NULL AND (output_next_at <= now() OR " KLINGQ_OWNER_DEAD ")"
    "  ORDER BY output_next_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)"
    "UPDATE klingq.jobs j SET output_attempts = j.output_attempts + 1, output_owner = $2,"
    "  output_next_at = now() + make_interval(secs => $3)"
    "FROM due WHERE j.id = due.id "
    "RETURNING j.id, j.url, j.output_attempts";

constexpr const char* jobs_output_next_due =
    "SELECT klingq.epoch_ms(min(output_next_at)) FROM klingq.jobs WHERE output_next_at IS NOT NULL";

constexpr const char* jobs_output_ok =
    "UPDATE klingq.jobs SET output_path = $2, output_bytes = $3, output_next_at = NULL,"
    "  output_owner = NULL, output_error = NULL "
    "WHERE id = $1 AND (output_path IS NULL OR output_next_at IS NOT NULL)";

constexpr const char* jobs_output_failed =
    "UPDATE klingq.jobs SET output_owner = NULL,"
    "  output_next_at = CASE WHEN $4::float8 IS NULL THEN NULL ELSE now() + make_interval(secs => $4::float8) END,"
    "  output_error = jsonb_build_object("
    "    'last', $3::jsonb || jsonb_build_object('at', now()),"
    "    'history', coalesce(output_error -> 'history', '[]'::jsonb) || ($3::jsonb || jsonb_build_object('at', now())),"
    "    'gave_up', $4::float8 IS NULL) "
    "WHERE id = $1 AND output_owner = $2";

constexpr const char* jobs_output_release =
    "UPDATE klingq.jobs SET output_owner = NULL, output_next_at = now(),"
    "  output_attempts = greatest(output_attempts - 1, 0) "
    "WHERE id = $1 AND output_owner = $2";

constexpr const char* jobs_output_release_all =
    "UPDATE klingq.jobs SET output_owner = NULL, output_next_at = now(),"
    "  output_attempts = CASE WHEN $2 THEN greatest(output_attempts - 1, 0) ELSE output_attempts END "
    "WHERE output_owner = $1 AND output_next_at IS NOT NULL";

// The history of a job's downloads, next to its state changes.
constexpr const char* job_event_download =
    "INSERT INTO klingq.job_events (job_id, from_state, to_state, instance, detail) "
    "SELECT id, state, state, $2, $3::jsonb FROM klingq.jobs WHERE id = $1";

#undef KLINGQ_OWNER_DEAD
}  // namespace sql

namespace {
double seconds(Duration d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

DownloadClaim claim_downloads(pqxx::connection& connection, const DownloadSettings& settings, std::int64_t wanted) {
  DownloadClaim claim;
  pqxx::work tx(connection);
  claim.gave_up = static_cast<std::int64_t>(
      tx.exec_params(sql::jobs_output_give_up_stale, settings.max_attempts, settings.instance).affected_rows());
  if (wanted > 0) {
    auto rows = tx.exec_params(sql::jobs_output_claim, static_cast<long long>(wanted), settings.instance,
                               seconds(settings.lease));
    for (const auto& row : rows) {
      claim.jobs.push_back(DownloadJob{row[0].as<long long>(), row[1].is_null() ? "" : row[1].as<std::string>(),
                                       row[2].as<int>()});
    }
  }
  auto next = tx.exec1(sql::jobs_output_next_due);
  if (!next[0].is_null()) claim.next_due = from_epoch_ms(next[0].as<long long>());
  tx.commit();
  return claim;
}

void record_download_ok(pqxx::connection& connection, const DownloadSettings& settings, std::int64_t job_id,
                        const std::string& path, std::int64_t bytes) {
  pqxx::work tx(connection);
  auto changed = tx.exec_params(sql::jobs_output_ok, static_cast<long long>(job_id), path, static_cast<long long>(bytes));
  if (changed.affected_rows() > 0) {
    std::string detail = "{\"download\": \"ok\", \"bytes\": " + std::to_string(bytes) + "}";
    tx.exec_params(sql::job_event_download, static_cast<long long>(job_id), settings.instance, detail);
  }
  tx.commit();
}

bool record_download_failed(pqxx::connection& connection, const DownloadSettings& settings, std::int64_t job_id,
                            const std::string& error_json, std::optional<Duration> retry_after) {
  pqxx::work tx(connection);
  std::optional<double> delay;
  if (retry_after) delay = seconds(*retry_after);
  auto changed = tx.exec_params(sql::jobs_output_failed, static_cast<long long>(job_id), settings.instance,
                                error_json, delay);
  const bool held = changed.affected_rows() > 0;
  if (held) {
    std::string detail = std::string("{\"download\": \"") + (retry_after ? "failed" : "gave_up") +
                         "\", \"error\": " + error_json + "}";
    tx.exec_params(sql::job_event_download, static_cast<long long>(job_id), settings.instance, detail);
  }
  tx.commit();
  return held;
}

void release_download(pqxx::connection& connection, const DownloadSettings& settings, std::int64_t job_id) {
  pqxx::work tx(connection);
  tx.exec_params(sql::jobs_output_release, static_cast<long long>(job_id), settings.instance);
  tx.commit();
}

std::int64_t release_downloads(pqxx::connection& connection, const DownloadSettings& settings,
                               bool uncount_attempts) {
  pqxx::work tx(connection);
  auto changed = tx.exec_params(sql::jobs_output_release_all, settings.instance, uncount_attempts);
  tx.commit();
  return static_cast<std::int64_t>(changed.affected_rows());
}

}  // namespace klingq::db
