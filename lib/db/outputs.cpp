// The download statements: see outputs.hpp and schema/006_outputs.sql. Each statement
// is a file lib/db/sql/downloads_*.sql (and job_events_insert_download.sql); here only
// the transactions around them and the event details.
#include "db/outputs.hpp"

#include "db/sql_statements.hpp"
#include "db/statement.hpp"

#include <pqxx/pqxx>

namespace klingq::db {
using namespace detail;

namespace {
double seconds(Duration d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

DownloadClaim claim_downloads(pqxx::connection& connection, const DownloadSettings& settings, std::int64_t wanted) {
  DownloadClaim claim;
  pqxx::work tx(connection);
  claim.gave_up = static_cast<std::int64_t>(
      exec(tx, sql::downloads_give_up_stale, settings.max_attempts, settings.instance).affected_rows());
  if (wanted > 0) {
    auto rows = exec(tx, sql::downloads_claim, static_cast<long long>(wanted), settings.instance,
                     seconds(settings.lease));
    for (const auto& row : rows) {
      claim.jobs.push_back(DownloadJob{row[0].as<long long>(), row[1].is_null() ? "" : row[1].as<std::string>(),
                                       row[2].as<int>()});
    }
  }
  if (auto next = time_of(exec1(tx, sql::downloads_get_next_due)[0])) claim.next_due = *next;
  tx.commit();
  return claim;
}

void record_download_ok(pqxx::connection& connection, const DownloadSettings& settings, std::int64_t job_id,
                        const std::string& path, std::int64_t bytes) {
  pqxx::work tx(connection);
  auto changed = exec(tx, sql::downloads_record_ok, static_cast<long long>(job_id), path, static_cast<long long>(bytes));
  if (changed.affected_rows() > 0) {
    std::string detail = "{\"download\": \"ok\", \"bytes\": " + std::to_string(bytes) + "}";
    exec(tx, sql::job_events_insert_download, static_cast<long long>(job_id), settings.instance, detail);
  }
  tx.commit();
}

bool record_download_failed(pqxx::connection& connection, const DownloadSettings& settings, std::int64_t job_id,
                            const std::string& error_json, std::optional<Duration> retry_after) {
  pqxx::work tx(connection);
  std::optional<double> delay;
  if (retry_after) delay = seconds(*retry_after);
  auto changed =
      exec(tx, sql::downloads_record_failed, static_cast<long long>(job_id), settings.instance, error_json, delay);
  const bool held = changed.affected_rows() > 0;
  if (held) {
    std::string detail = std::string("{\"download\": \"") + (retry_after ? "failed" : "gave_up") +
                         "\", \"error\": " + error_json + "}";
    exec(tx, sql::job_events_insert_download, static_cast<long long>(job_id), settings.instance, detail);
  }
  tx.commit();
  return held;
}

void release_download(pqxx::connection& connection, const DownloadSettings& settings, std::int64_t job_id) {
  pqxx::work tx(connection);
  exec(tx, sql::downloads_release, static_cast<long long>(job_id), settings.instance);
  tx.commit();
}

std::int64_t release_downloads(pqxx::connection& connection, const DownloadSettings& settings,
                               bool uncount_attempts) {
  pqxx::work tx(connection);
  auto changed = exec(tx, sql::downloads_release_all, settings.instance, uncount_attempts);
  tx.commit();
  return static_cast<std::int64_t>(changed.affected_rows());
}

}  // namespace klingq::db
