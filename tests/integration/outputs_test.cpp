// outputs.download end to end: real PostgreSQL, klingq-sim serving the videos itself
// (--output-bytes) with its download faults, the real klingqd. Every file is checked
// byte for byte against the simulator's deterministic content, and the simulator's
// counters show how many downloads were tried.
#include "support/http_call.hpp"
#include "support/stack.hpp"

#include "sim/state.hpp"

#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>

using namespace klingq::testing;
using namespace std::chrono_literals;
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

long long outputs_stat(Stack& stack, const char* key) {
  return stack.sim_stats().at("outputs").at(key).to_number<long long>();
}

std::string file_content(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<std::string> part_files(const std::string& dir) {
  std::vector<std::string> parts;
  std::error_code ignored;
  for (const auto& entry : fs::directory_iterator(dir, ignored)) {
    if (entry.path().filename().string().ends_with(".part")) parts.push_back(entry.path().string());
  }
  return parts;
}

std::map<std::string, std::string> with_downloads(Stack& stack, const std::string& dir,
                                                  std::map<std::string, std::string> overrides = {}) {
  overrides.try_emplace("limits.plan", "enterprise");
  overrides.try_emplace("outputs.download", "true");
  overrides.try_emplace("outputs.dir", "\"" + dir + "\"");
  return stack.with_webhooks(std::move(overrides));
}

// Every completed row has its video at dir/<id>.mp4, complete and the right bytes, the
// path and size recorded, and no part file is left anywhere.
void check_every_video(Stack& stack, const std::string& dir, std::size_t size) {
  pqxx::connection connection(stack.database);
  pqxx::read_transaction tx(connection);
  auto rows = tx.exec("SELECT id, remote_id, output_path, output_bytes, output_error IS NULL, "
                      "output_next_at IS NULL, state::text FROM klingq.jobs ORDER BY id");
  for (const auto& row : rows) {
    const auto id = row[0].as<long long>();
    const auto remote_id = row[1].as<std::string>();
    INFO("job " << id);
    CHECK(row[6].as<std::string>() == "completed");
    REQUIRE_FALSE(row[2].is_null());
    const auto path = row[2].as<std::string>();
    CHECK(path == dir + "/" + std::to_string(id) + ".mp4");
    CHECK(row[3].as<long long>() == static_cast<long long>(size));
    CHECK(row[4].as<bool>());  // a success clears the errors of earlier attempts
    CHECK(row[5].as<bool>());  // nothing pending
    REQUIRE(fs::exists(path));
    CHECK(fs::file_size(path) == size);
    CHECK(file_content(path) == klingq::sim::output_content(remote_id, size));
  }
  CHECK(part_files(dir).empty());
}

}  // namespace

TEST_CASE("outputs: a batch ends with every video downloaded, checked and recorded") {
  constexpr std::size_t size = 300000;
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1", "--output-bytes",
               std::to_string(size)});
  const auto dir = stack.dir + "/videos";
  // What a killed klingqd leaves behind: removed at start, since nobody holds its lock.
  fs::create_directories(dir);
  std::ofstream(dir + "/.999.mp4.part") << "partial";
  stack.insert_jobs(12);
  const int http_port = free_port();
  stack.start_daemon(with_downloads(stack, dir, {{"http.listen", "\"127.0.0.1:" + std::to_string(http_port) + "\""}}));
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed' AND output_path IS NOT NULL") == 12;
  }, 60s));
  check_every_video(stack, dir, size);
  CHECK(stack.scalar("SELECT max(output_attempts) FROM klingq.jobs") == 1);
  CHECK(outputs_stat(stack, "served") == 12);
  CHECK(outputs_stat(stack, "requests") == 12);
  // Each success is in the job's history, next to its state changes.
  CHECK(stack.scalar("SELECT count(*) FROM klingq.job_events WHERE detail->>'download' = 'ok'") == 12);
  CHECK(stack.scalar("SELECT outputs_downloaded FROM klingq.queue_summary WHERE state = 'completed'") == 12);
  auto metrics = http_call("127.0.0.1:" + std::to_string(http_port), "GET", "/metrics");
  REQUIRE(metrics.status == 200);
  CHECK(metrics.body.find("klingq_downloads_total{result=\"ok\"} 12") != std::string::npos);
  CHECK(metrics.body.find("klingq_download_bytes_total " + std::to_string(12 * size)) != std::string::npos);
}

TEST_CASE("outputs: truncated and failed downloads are retried until every video is complete") {
  constexpr std::size_t size = 200000;
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1", "--output-bytes",
               std::to_string(size), "--output-fault-truncate", "0.3", "--output-fault-500", "0.2", "--seed", "5"});
  const auto dir = stack.dir + "/videos";
  stack.insert_jobs(15);
  // Retries back off from dispatch.retry_base_ms (50 ms here); 20 attempts make a
  // give-up (0.5^20 per video) practically impossible.
  auto& daemon = stack.start_daemon(with_downloads(stack, dir, {{"outputs.max_attempts", "20"}}));
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE output_path IS NOT NULL") == 15;
  }, 90s));
  check_every_video(stack, dir, size);
  CHECK(outputs_stat(stack, "truncated") >= 1);
  CHECK(outputs_stat(stack, "server_errors") >= 1);
  CHECK(outputs_stat(stack, "served") == 15);
  CHECK(stack.scalar("SELECT max(output_attempts) FROM klingq.jobs") >= 2);
  // The failed attempts are in the history: a cut body as a size or transport failure.
  CHECK(stack.scalar("SELECT count(*) FROM klingq.job_events WHERE detail->>'download' = 'failed'") ==
        outputs_stat(stack, "truncated") + outputs_stat(stack, "server_errors"));
  CHECK(stack.scalar("SELECT count(*) FROM klingq.job_events WHERE detail->>'download' = 'failed' "
                     "AND detail->'error'->>'status' = '500'") == outputs_stat(stack, "server_errors"));
  CHECK(daemon.stderr_text().find("download_failed") != std::string::npos);
}

TEST_CASE("outputs: a download that always fails records output_error after max_attempts, the job stays completed") {
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1", "--output-bytes", "1000",
               "--output-fault-500", "1"});
  const auto dir = stack.dir + "/videos";
  stack.insert_jobs(2);
  auto& daemon = stack.start_daemon(with_downloads(stack, dir, {{"outputs.max_attempts", "3"}}));
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE output_error->>'gave_up' = 'true'") == 2;
  }, 60s));
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed' AND output_path IS NULL "
                     "AND output_attempts = 3 AND output_next_at IS NULL AND output_owner IS NULL") == 2);
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE jsonb_array_length(output_error->'history') = 3 "
                     "AND output_error->'last'->>'class' = 'http_status' AND output_error->'last'->>'status' = '500' "
                     "AND output_error->'last'->>'attempt' = '3'") == 2);
  CHECK(outputs_stat(stack, "server_errors") == 6);
  CHECK(stack.scalar("SELECT count(*) FROM klingq.job_events WHERE detail->>'download' = 'gave_up'") == 2);
  CHECK(stack.scalar("SELECT outputs_failed FROM klingq.queue_summary WHERE state = 'completed'") == 2);
  CHECK(daemon.stderr_text().find("download_gave_up") != std::string::npos);
  CHECK(fs::exists(dir));  // klingqd creates it
  CHECK(fs::is_empty(dir));  // neither a video nor a part file
  // Given up means given up: no further attempt after a while.
  auto served = outputs_stat(stack, "requests");
  stack.exec("NOTIFY klingq_jobs, 'slot'");
  CHECK_FALSE(Stack::wait_until([&] { return outputs_stat(stack, "requests") > served; }, 1500ms));
}

TEST_CASE("outputs: a video whose Content-Length is over outputs.max_bytes is given up at once as too_large") {
  // Found in the restructure: the header parser refused the length first, and the
  // attempt was recorded as a transport error and retried up to max_attempts.
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1", "--output-bytes", "5000"});
  const auto dir = stack.dir + "/videos";
  stack.insert_jobs(2);
  stack.start_daemon(with_downloads(stack, dir, {{"outputs.max_attempts", "3"}, {"outputs.max_bytes", "1000"}}));
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE output_error->>'gave_up' = 'true'") == 2;
  }, 60s));
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed' AND output_path IS NULL "
                     "AND output_attempts = 1 AND output_error->'last'->>'class' = 'too_large' "
                     "AND output_error->'last'->>'message' LIKE '%exceeds outputs.max_bytes 1000%'") == 2);
  CHECK(outputs_stat(stack, "requests") == 2);  // one attempt each: never retried
  CHECK(part_files(dir).empty());
}

TEST_CASE("outputs: two instances download each video exactly once") {
  constexpr std::size_t size = 50000;
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1", "--output-bytes",
               std::to_string(size)});
  const auto dir = stack.dir + "/videos";
  stack.insert_jobs(20);
  for (int i = 0; i < 2; ++i) {
    stack.start_daemon(with_downloads(stack, dir, {{"dispatch.instance_id", "\"instance-" + std::to_string(i) + "\""}}));
  }
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE output_path IS NOT NULL") == 20;
  }, 60s));
  check_every_video(stack, dir, size);
  CHECK(outputs_stat(stack, "requests") == 20);
}

TEST_CASE("outputs: SIGTERM interrupts a stalled download at once and releases it uncounted") {
  // A server that accepts connections (the kernel's backlog) and never answers.
  int silent = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(silent >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(silent, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(listen(silent, 16) == 0);
  socklen_t length = sizeof address;
  getsockname(silent, reinterpret_cast<sockaddr*>(&address), &length);
  const auto url = "http://127.0.0.1:" + std::to_string(ntohs(address.sin_port)) + "/never.mp4";

  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1"});
  const auto dir = stack.dir + "/videos";
  // A job completed earlier whose video is due (as a completion with downloads on leaves it).
  stack.exec("INSERT INTO klingq.jobs (prompt, state, remote_id, url, completed_at, output_next_at) "
             "VALUES ('stalled', 'completed', 'remote-stalled', '" + url + "', now(), now())");
  auto& daemon = stack.start_daemon(with_downloads(stack, dir));
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE output_owner IS NOT NULL AND output_attempts = 1") == 1;
  }, 20s));
  const auto stopping = std::chrono::steady_clock::now();
  daemon.signal(SIGTERM);
  auto code = daemon.wait(15s);
  REQUIRE(code);
  CHECK(*code == 0);
  CHECK(std::chrono::steady_clock::now() - stopping < 5s);  // not the 10 s grace, not the download's deadline
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE output_owner IS NULL AND output_attempts = 0 "
                     "AND output_next_at IS NOT NULL AND output_path IS NULL AND output_error IS NULL") == 1);
  CHECK(part_files(dir).empty());
  close(silent);
}

TEST_CASE("outputs: a killed instance's download is resumed by the next start") {
  // The first daemon is killed while its download stalls; the second finds the claim of
  // a dead instance due at once (not after the attempt's 30-minute lease) and fetches it.
  int silent = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(silent >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(silent, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(listen(silent, 16) == 0);
  socklen_t length = sizeof address;
  getsockname(silent, reinterpret_cast<sockaddr*>(&address), &length);

  constexpr std::size_t size = 20000;
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1", "--output-bytes",
               std::to_string(size)});
  const auto dir = stack.dir + "/videos";
  stack.insert_jobs(1);
  // The job completes normally; its url is then pointed at the silent server.
  stack.start_daemon(with_downloads(stack, dir, {{"outputs.download", "false"}}));
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE state = 'completed'") == 1; }, 30s));
  stack.daemons.back()->signal(SIGTERM);
  REQUIRE(stack.daemons.back()->wait(15s));
  const auto real_url = stack.text("SELECT url FROM klingq.jobs");
  stack.exec("UPDATE klingq.jobs SET url = 'http://127.0.0.1:" + std::to_string(ntohs(address.sin_port)) +
             "/never.mp4', output_next_at = now()");
  auto& first = stack.start_daemon(with_downloads(stack, dir, {{"dispatch.instance_id", "\"first\""}}));
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE output_owner = 'first'") == 1;
  }, 20s));
  first.signal(SIGKILL);
  first.wait(5s);
  stack.exec("DELETE FROM klingq.instances WHERE id = 'first'");  // as 30 s without a heartbeat would
  stack.exec("UPDATE klingq.jobs SET url = '" + real_url + "'");
  stack.start_daemon(with_downloads(stack, dir, {{"dispatch.instance_id", "\"second\""}}));
  REQUIRE(Stack::wait_until([&] { return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE output_path IS NOT NULL") == 1; }, 20s));
  check_every_video(stack, dir, size);
  CHECK(stack.scalar("SELECT output_attempts FROM klingq.jobs") == 2);  // the killed attempt counts
  close(silent);
}

TEST_CASE("outputs: https downloads verify the certificate and host - an untrusted one fails, a trusted one is fetched") {
  // A real TLS origin: `openssl s_server -WWW` serving a directory, with a self-signed
  // certificate for localhost and 127.0.0.1. Nothing leaves the machine.
  const std::string openssl = "/usr/bin/openssl";
  if (!fs::exists(openssl)) {
    MESSAGE("skipped: no " << openssl << " to act as the TLS origin (package openssl)");
    return;
  }
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1"});
  const auto serve = stack.dir + "/origin";
  fs::create_directories(serve);
  auto made = run({openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                   "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", serve + "/key.pem", "-out",
                   serve + "/cert.pem"});
  REQUIRE_MESSAGE(made.exit_code == 0, made.err);
  const std::string video = klingq::sim::output_content("tls-video", 70000);
  std::ofstream(serve + "/video.mp4", std::ios::binary) << video;
  const int port = free_port();
  Process origin({"/bin/sh", "-c",
                  "cd '" + serve + "' && exec " + openssl + " s_server -WWW -accept 127.0.0.1:" + std::to_string(port) +
                      " -cert cert.pem -key key.pem"});
  REQUIRE_MESSAGE(origin.wait_for_line("ACCEPT", 10s), origin.stderr_text());
  const auto origin_address = "127.0.0.1:" + std::to_string(port);
  const auto host = "https://localhost:" + std::to_string(port);
  // The query stands for a signed URL's credential: it must never reach a log or a row.
  stack.exec("INSERT INTO klingq.jobs (prompt, state, remote_id, url, completed_at, output_next_at) VALUES "
             "('by name', 'completed', 'tls-1', '" + host + "/video.mp4?token=sekrit-token', now(), now()), "
             "('by address', 'completed', 'tls-2', 'https://" + origin_address + "/video.mp4', now(), now())");
  const auto dir = stack.dir + "/videos";

  // Not trusted: the handshake fails, one attempt, recorded without the token.
  auto& untrusting = stack.start_daemon(with_downloads(stack, dir, {{"outputs.max_attempts", "1"}}),
                                        {{"SSL_CERT_FILE", stack.dir + "/no-such-ca.pem"}});
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE output_error->>'gave_up' = 'true'") == 2;
  }, 30s));
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE output_error->'last'->>'class' = 'transport' "
                     "AND output_error->'last'->>'message' LIKE '%certificate%'") == 2);
  CHECK(stack.text("SELECT string_agg(output_error::text, ' ') FROM klingq.jobs").find("sekrit") == std::string::npos);
  CHECK(untrusting.stderr_text().find("sekrit") == std::string::npos);
  untrusting.signal(SIGTERM);
  REQUIRE(untrusting.wait(15s));

  // Trusted (the certificate as the CA file): both names verify and the bytes arrive.
  // (s_server -WWW would take the query for part of the file name: dropped here.)
  stack.exec("UPDATE klingq.jobs SET url = split_part(url, '?', 1), output_next_at = now(), output_attempts = 0, "
             "output_error = NULL");
  auto& trusting = stack.start_daemon(with_downloads(stack, dir), {{"SSL_CERT_FILE", serve + "/cert.pem"}});
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE output_path IS NOT NULL") == 2;
  }, 30s));
  for (const auto* remote_id : {"tls-1", "tls-2"}) {
    auto path = stack.text(std::string("SELECT output_path FROM klingq.jobs WHERE remote_id = '") + remote_id + "'");
    CHECK(file_content(path) == video);
  }
  CHECK(part_files(dir).empty());
  CHECK(trusting.stderr_text().find("sekrit") == std::string::npos);
}

TEST_CASE("outputs: redirects are followed up to five hops - a sixth fails the attempt") {
  constexpr std::size_t size = 30000;
  Stack stack({"--plan", "enterprise", "--time-scale", "60", "--gen-seconds", "1:1", "--output-bytes",
               std::to_string(size), "--output-redirects", "5"});
  const auto dir = stack.dir + "/videos";
  stack.insert_jobs(2);
  stack.start_daemon(with_downloads(stack, dir, {{"outputs.max_attempts", "1"}}));
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE output_path IS NOT NULL") == 2;
  }, 30s));
  check_every_video(stack, dir, size);
  CHECK(outputs_stat(stack, "redirects") == 10);

  // One hop more than allowed; fetching the videos again (as an operator would ask).
  stack.sim_config({{"output_redirects", 6}});
  stack.exec("UPDATE klingq.jobs SET output_next_at = now(), output_attempts = 0; NOTIFY klingq_jobs, 'slot'");
  REQUIRE(Stack::wait_until([&] {
    return stack.scalar("SELECT count(*) FROM klingq.jobs WHERE output_error->>'gave_up' = 'true'") == 2;
  }, 30s));
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE output_error->'last'->>'class' = 'redirects'") == 2);
  // The earlier, complete files stay where they were.
  CHECK(stack.scalar("SELECT count(*) FROM klingq.jobs WHERE output_path IS NOT NULL") == 2);
  CHECK(part_files(dir).empty());
}
