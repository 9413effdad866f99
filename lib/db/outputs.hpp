// The statements behind outputs.download (schema/006_outputs.sql): claiming completed
// jobs whose video is due for download, and recording how each attempt ended. One
// function per transaction, plain values in and out; the statements are the files
// lib/db/sql/downloads_*.sql.
//
// A pending download is a row with output_next_at set. Claiming pushes output_next_at
// to the end of the attempt's lease and counts the attempt; the instance that claimed
// it is output_owner. A row whose lease ran out, or whose owner no longer heartbeats
// (killed), is due again for anyone. Nothing here touches klingq.account: downloads do
// not count against the API's limits.
#pragma once

#include "util/clock.hpp"

#include <pqxx/connection>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace klingq::db {

struct DownloadSettings {
  std::string instance;                      // output_owner and job_events.instance
  int max_attempts = 5;                      // outputs.max_attempts
  Duration lease = std::chrono::minutes(31);  // longer than one attempt can take
};

struct DownloadJob {
  std::int64_t id = 0;
  std::string url;
  int attempt = 1;  // this attempt's number, 1-based
};

struct DownloadClaim {
  std::vector<DownloadJob> jobs;
  TimePoint next_due = TimePoint::max();  // the earliest pending row not claimed now
  std::int64_t gave_up = 0;               // rows whose last attempt never reported back
};

// Claims at most `wanted` due downloads (FOR UPDATE SKIP LOCKED, so instances never
// claim the same row at once). Rows out of attempts whose last attempt never reported
// (its instance died) are given up first, with output_error saying so.
DownloadClaim claim_downloads(pqxx::connection& connection, const DownloadSettings& settings,
                              std::int64_t wanted);

// The file is in place: output_path and output_bytes set, output_error cleared (the
// attempts' history stays in klingq.job_events). Recorded even if the claim was lost
// meanwhile: the file at that path is complete either way. (An operator may set
// output_next_at again to fetch a video anew; the new file then replaces the old.)
void record_download_ok(pqxx::connection& connection, const DownloadSettings& settings,
                        std::int64_t job_id, const std::string& path, std::int64_t bytes);

// A failed attempt. error_json: {"class", "message", "status", "attempt"}. With
// retry_after set the row is due again then; without, the download is given up
// (output_error.gave_up = true). False when this instance no longer held the claim.
bool record_download_failed(pqxx::connection& connection, const DownloadSettings& settings,
                            std::int64_t job_id, const std::string& error_json,
                            std::optional<Duration> retry_after);

// An attempt cut short by shutdown: not counted, due again at once.
void release_download(pqxx::connection& connection, const DownloadSettings& settings,
                      std::int64_t job_id);
// Every claim this instance id still holds, due again at once: at shutdown for attempts
// that did not report within the grace (uncount_attempts: they were cut short, not
// failed), and at start-up for claims of an earlier process with the same
// dispatch.instance_id that was killed (counted: the attempt may be what killed it).
std::int64_t release_downloads(pqxx::connection& connection, const DownloadSettings& settings,
                               bool uncount_attempts);

}  // namespace klingq::db
