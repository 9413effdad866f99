#include "dispatcher/engine.hpp"

#include "db/outputs.hpp"
#include "ops/sd_notify.hpp"
#include "outputs/downloader.hpp"
#include "ratelimit/headers.hpp"
#include "util/log.hpp"
#include "webhook/receiver.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <pqxx/pqxx>

#include <unistd.h>

#include <array>

namespace klingq::dispatcher {
namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using namespace std::chrono_literals;

namespace {

// How long to sleep (steady clock) until a wall-clock instant, clamped.
std::chrono::steady_clock::duration until(TimePoint at, Duration cap) {
  auto now = Clock::now();
  if (at == TimePoint::max() || at - now > cap) return cap;
  if (at <= now) return 1ms;
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(at - now) + 1ms;
}

ratelimit::Observation observation_of(const http::ClientResult& result) {
  if (result.error) return {};
  const auto& fields = result.response.headers;
  return ratelimit::parse_headers(
      [&](std::string_view name) -> std::optional<std::string> {
        auto it = fields.find(boost::beast::string_view(name.data(), name.size()));
        if (it == fields.end()) return std::nullopt;
        return std::string(it->value());
      },
      Clock::now());
}

}  // namespace

struct Engine::State : std::enable_shared_from_this<Engine::State> {
  State(asio::any_io_executor executor, db::Pool& pool, http::Client& api, ops::Metrics& metrics,
        EngineOptions options)
      : executor(executor), pool(pool), api(api), metrics(metrics), options(std::move(options)),
        claim_timer(executor), poll_timer(executor), credit_timer(executor), heartbeat_timer(executor),
        download_timer(executor), drained(executor),
        record_timers{asio::steady_timer(executor), asio::steady_timer(executor)},
        random(std::random_device{}()), downloader(std::make_unique<outputs::Downloader>(executor)) {}

  asio::any_io_executor executor;
  db::Pool& pool;
  http::Client& api;
  ops::Metrics& metrics;
  EngineOptions options;

  asio::steady_timer claim_timer;      // the claim loop sleeps here; wake() cancels it
  asio::steady_timer poll_timer;
  asio::steady_timer credit_timer;
  asio::steady_timer heartbeat_timer;
  asio::steady_timer download_timer;   // the download loop sleeps here; wake_downloads() cancels it
  asio::steady_timer drained;          // cancelled when the last in-flight request ends
  // One per record loop: a timer's expires_after() cancels every wait on it, so two loops
  // sharing one would wake each other forever.
  std::array<asio::steady_timer, 2> record_timers;
  std::vector<dispatcher::SubmitInput> to_record;  // answered submits, oldest first
  bool woken = false;                  // a wake() that arrived while the loop was busy
  std::chrono::steady_clock::time_point last_reap{};
  bool credit_poke = false;            // the claim loop wants a fresh balance
  bool stopping = false;
  int in_flight = 0;                   // submits and polls on the wire
  int loops_running = 0;
  std::unique_ptr<asio::posix::stream_descriptor> listen_socket;
  std::mt19937_64 random;
  std::unique_ptr<outputs::Downloader> downloader;
  bool downloads_woken = false;        // a wake_downloads() that arrived while the loop was busy
  int downloads_running = 0;
  // One per running download, so that stop() can interrupt them.
  std::vector<std::shared_ptr<outputs::Cancellation>> download_cancellations;
  bool registered = false;             // the instance row exists (first heartbeat done)

  // What /readyz and STATUS= show; kept here so they never block on the database.
  bool database_ok = false;
  bool halted = false;
  dispatcher::Hold last_hold = dispatcher::Hold::none;
  dispatcher::Snapshot snapshot;
  bool warned_low_balance = false;

  double unit_random() { return std::uniform_real_distribution<double>(0.0, 1.0)(random); }

  api::Endpoint endpoint() const {
    return api::Endpoint{options.protocol, &options.api_key, options.queue.webhook_url};
  }

  void wake() {
    woken = true;
    claim_timer.cancel();
  }

  void note_database(bool ok, const char* where, const std::exception* error = nullptr) {
    if (ok && !database_ok) log::notice("database_ok", {{"where", where}});
    if (!ok && database_ok) {
      log::error("database_unreachable", {{"where", where}, {"error", error ? error->what() : "?"}});
    }
    database_ok = ok;
  }

  void note_hold(dispatcher::Hold hold) {
    if (hold == last_hold) return;
    // Once per change, not once per claim: a daily cap can last for hours.
    if (hold != dispatcher::Hold::none) log::notice("dispatch_held", {{"by", dispatcher::to_string(hold)}});
    else log::info("dispatch_flowing");
    last_hold = hold;
  }

  void wake_recorders() {
    for (auto& timer : record_timers) timer.cancel();
  }

  void wake_downloads() {
    downloads_woken = true;
    download_timer.cancel();
  }

  void request_started() { ++in_flight; }
  void request_finished() {
    if (--in_flight > 0) return;
    drained.cancel();
    if (stopping) wake_recorders();  // the record loops may end now
  }

  awaitable<void> sleep(asio::steady_timer& timer, std::chrono::steady_clock::duration d) {
    timer.expires_after(d);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
  }

  // ---- claim and submit -------------------------------------------------------------
  awaitable<void> claim_loop() {
    auto self = shared_from_this();
    while (!stopping) {
      woken = false;
      const int capacity = options.max_in_flight - in_flight;
      std::chrono::steady_clock::duration wait = options.safety_poll;
      if (capacity > 0) {
        const std::int64_t wanted = std::min(capacity, options.claim_batch);
        dispatcher::ClaimResult result;
        bool ok = false;
        try {
          auto settings = options.queue;
          // Expired leases (a crashed instance) are looked for at most once a second:
          // leases last minutes, and the claim is the hot path.
          const auto now = std::chrono::steady_clock::now();
          const bool reap = now - last_reap >= 1s;
          if (reap) last_reap = now;
          result = co_await pool.run([settings, wanted, reap](pqxx::connection& c) {
            return dispatcher::claim(c, settings, wanted, reap);
          });
          ok = true;
          note_database(true, "claim");
        } catch (const std::exception& e) {
          note_database(false, "claim", &e);
          wait = std::min<std::chrono::steady_clock::duration>(options.safety_poll, 1s);
        }
        if (ok) {
          log::debug("claimed", {{"jobs", std::to_string(result.jobs.size())}, {"held_by", dispatcher::to_string(result.held_by)}});
          note_hold(result.held_by);
          halted = result.held_by == dispatcher::Hold::halted;
          if (result.held_by == dispatcher::Hold::credit || result.held_by == dispatcher::Hold::no_balance) {
            credit_poke = true;
            credit_timer.cancel();
          }
          for (auto& job : result.jobs) {
            request_started();
            asio::co_spawn(executor, submit(std::move(job)), asio::detached);
          }
          if (static_cast<std::int64_t>(result.jobs.size()) == wanted) continue;  // maybe more
          wait = until(result.retry_at, options.safety_poll);
        }
      }
      if (woken) continue;
      co_await sleep(claim_timer, wait);
    }
  }

  awaitable<void> submit(dispatcher::ClaimedJob job) {
    auto self = shared_from_this();
    // The row's pinned webhookUrl, which may be another instance's (see dispatcher::ClaimedJob).
    auto job_endpoint = endpoint();
    job_endpoint.webhook_url = job.webhook_url;
    auto request = api::build_submit(job.spec, job_endpoint);
    auto result = co_await api.request(std::move(request));
    metrics.api_request_duration(ops::ApiCall::submit)
        .Observe(std::chrono::duration<double>(result.elapsed).count());
    auto outcome = api::classify_submit(result);
    auto observation = observation_of(result);
    metrics.submissions(outcome.outcome).Increment();
    if (outcome.outcome == api::OutcomeClass::rate_limited) {
      metrics.rate_limited(outcome.window.value_or(ratelimit::Window::rpm)).Increment();
      log::warning("rate_limited", {{"job", std::to_string(job.id)},
                                    {"window", ratelimit::to_string(outcome.window.value_or(ratelimit::Window::rpm))}});
    } else if (outcome.outcome == api::OutcomeClass::unauthorized) {
      log::error("api_key_refused", {{"job", std::to_string(job.id)}, {"message", outcome.message}});
    } else if (outcome.outcome == api::OutcomeClass::no_credit) {
      log::warning("insufficient_credits", {{"job", std::to_string(job.id)},
                                            {"available", outcome.credits_available ? std::to_string(*outcome.credits_available) : "?"}});
    } else if (outcome.outcome != api::OutcomeClass::accepted) {
      log::info("submit_failed", {{"job", std::to_string(job.id)},
                                  {"class", api::to_string(outcome.outcome)},
                                  {"status", std::to_string(outcome.http_status)},
                                  {"message", outcome.message}});
    }
    to_record.push_back(dispatcher::SubmitInput{std::move(job), std::move(outcome), observation, unit_random()});
    wake_recorders();  // a record loop writes it with whatever else has arrived
  }

  // Group commit of submit outcomes: one transaction records every response that arrived
  // while the previous one was being written, so the shared account row is locked once
  // per group instead of once per job. A submit counts as in flight until it is recorded.
  awaitable<void> record_loop(std::size_t index) {
    auto self = shared_from_this();
    int failures = 0;
    std::size_t alone = 0;  // after a failed group: record this many one by one, to isolate a bad one
    while (!stopping || in_flight > 0) {
      if (to_record.empty()) {
        co_await sleep(record_timers[index], std::chrono::hours(1));
        continue;
      }
      const auto take = static_cast<std::ptrdiff_t>(alone > 0 ? 1 : std::min<std::size_t>(to_record.size(), 1000));
      auto group = std::make_shared<std::vector<dispatcher::SubmitInput>>(std::make_move_iterator(to_record.begin()),
                                                                  std::make_move_iterator(to_record.begin() + take));
      to_record.erase(to_record.begin(), to_record.begin() + take);
      try {
        auto settings = options.queue;
        auto records = co_await pool.run([settings, group](pqxx::connection& c) {
          return dispatcher::record_submits(c, settings, *group);
        });
        note_database(true, "record_submit");
        failures = 0;
        if (alone > 0) --alone;
        for (std::size_t i = 0; i < records.size(); ++i) recorded((*group)[i], records[i]);
        wake();
        continue;
      } catch (const std::exception& e) {
        note_database(false, "record_submit", &e);
        ++failures;
      }
      // Retry while the database is away: the API may have charged for these jobs, and
      // only their rows know it. When we give up (shutdown), the leases expire and the
      // resubmit with the same idempotency key finds the same job.
      if (stopping && failures > 3) {
        const auto lost = to_record.size() + group->size();
        log::warning("shutdown_with_unrecorded_submits", {{"count", std::to_string(lost)}});
        to_record.clear();
        for (std::size_t i = 0; i < lost; ++i) request_finished();
        continue;
      }
      if (group->size() > 1) alone = group->size();
      to_record.insert(to_record.begin(), std::make_move_iterator(group->begin()), std::make_move_iterator(group->end()));
      asio::steady_timer backoff(executor);
      co_await sleep(backoff, std::min<std::chrono::steady_clock::duration>(100ms * (1 << std::min(failures, 5)), 3s));
    }
  }

  void recorded(const dispatcher::SubmitInput& input, const dispatcher::SubmitRecord& record) {
    const auto& [job, outcome, observation, r] = input;
    if (outcome.outcome == api::OutcomeClass::accepted && !record.new_state.empty()) {
      metrics.credit_spent().Increment(static_cast<double>(outcome.credit_cost.value_or(job.expected_cost)));
      metrics.insert_to_submit().Observe(std::chrono::duration<double>(Clock::now() - job.created_at).count());
      log::debug("submitted", {{"job", std::to_string(job.id)}, {"remote_id", outcome.remote_id}});
    }
    if (record.new_state.empty()) log::warning("lease_lost", {{"job", std::to_string(job.id)}});
    if (record.completed_early && record.new_state == "completed") wake_downloads();
    request_finished();
  }

  // ---- polling ----------------------------------------------------------------------
  awaitable<void> poll_loop() {
    auto self = shared_from_this();
    while (!stopping) {
      std::chrono::steady_clock::duration wait = options.safety_poll;
      try {
        auto settings = options.queue;
        const std::int64_t wanted = std::max(1, std::min(50, options.max_in_flight - in_flight));
        auto claim = co_await pool.run([settings, wanted](pqxx::connection& c) {
          return dispatcher::claim_polls(c, settings, wanted);
        });
        note_database(true, "claim_polls");
        if (claim.newly_stuck > 0) {
          log::warning("jobs_stuck", {{"count", std::to_string(claim.newly_stuck)}});
        }
        for (auto& job : claim.jobs) {
          request_started();
          asio::co_spawn(executor, poll(std::move(job)), asio::detached);
        }
        wait = until(claim.retry_at, options.safety_poll);
      } catch (const std::exception& e) {
        note_database(false, "claim_polls", &e);
      }
      co_await sleep(poll_timer, wait);
    }
  }

  awaitable<void> poll(dispatcher::PollJob job) {
    auto self = shared_from_this();
    auto result = co_await api.request(api::build_status(job.remote_id, endpoint()));
    metrics.api_request_duration(ops::ApiCall::poll).Observe(std::chrono::duration<double>(result.elapsed).count());
    metrics.polls().Increment();
    auto status = api::parse_status(result);
    auto observation = observation_of(result);
    try {
      auto settings = options.queue;
      auto outcome = status.outcome;
      co_await pool.run([settings, outcome, observation](pqxx::connection& c) {
        dispatcher::record_response(c, settings, outcome, observation);
      });
      if (status.outcome.outcome == api::OutcomeClass::accepted && status.terminal) {
        api::Completion completion{job.remote_id, status.status, status.url, status.metadata_json,
                                  status.error};
        auto applied = co_await pool.run([settings, completion](pqxx::connection& c) {
          return dispatcher::apply_completion(c, settings, completion);
        });
        if (applied.result == dispatcher::CompletionResult::applied) {
          if (applied.submit_to_complete_seconds) metrics.submit_to_complete().Observe(*applied.submit_to_complete_seconds);
          log::debug("completed_by_poll", {{"job", std::to_string(applied.job_id)}, {"status", status.status}});
          wake();
          if (status.status == "completed") wake_downloads();
        }
      }
    } catch (const std::exception& e) {
      note_database(false, "poll", &e);
    }
    request_finished();
  }

  // ---- downloads --------------------------------------------------------------------
  db::DownloadSettings download_settings() const {
    db::DownloadSettings settings;
    settings.instance = options.queue.instance;
    settings.max_attempts = options.outputs.max_attempts;
    // Longer than an attempt can last, so a live owner's claim never expires under it.
    settings.lease = std::chrono::duration_cast<Duration>(options.outputs.timeout) + std::chrono::seconds(60);
    return settings;
  }

  awaitable<void> download_loop() {
    auto self = shared_from_this();
    bool started = false;  // this process's start-up cleanup is done
    while (!stopping) {
      downloads_woken = false;
      std::chrono::steady_clock::duration wait = options.safety_poll;
      // Off (it may be turned on by SIGHUP), or waiting for the first heartbeat: until
      // the instance row exists, other instances would take our claims for a dead
      // instance's.
      if (options.outputs.download && registered) {
        try {
          auto settings = download_settings();
          if (!started) {
            // Claims of an earlier process with this instance id (killed) are due again
            // now, and the part files nobody holds any more are removed.
            auto released = co_await pool.run([settings](pqxx::connection& c) {
              return db::release_downloads(c, settings, false);
            });
            auto removed = co_await downloader->remove_stale_parts(options.outputs.dir);
            log::notice("downloads_on", {{"dir", options.outputs.dir},
                                         {"released_claims", std::to_string(released)},
                                         {"removed_part_files", std::to_string(removed)}});
            started = true;
          }
          const std::int64_t wanted = std::max(0, options.outputs.concurrency - downloads_running);
          auto claim = co_await pool.run([settings, wanted](pqxx::connection& c) {
            return db::claim_downloads(c, settings, wanted);
          });
          note_database(true, "claim_downloads");
          if (claim.gave_up > 0) {
            metrics.downloads(ops::DownloadOutcome::gave_up).Increment(static_cast<double>(claim.gave_up));
            log::warning("downloads_abandoned", {{"count", std::to_string(claim.gave_up)}});
          }
          for (auto& job : claim.jobs) {
            ++downloads_running;
            asio::co_spawn(executor, download(std::move(job)), asio::detached);
          }
          if (static_cast<std::int64_t>(claim.jobs.size()) == wanted && wanted > 0) continue;  // maybe more
          // With every slot busy, a finishing download wakes us.
          if (downloads_running < options.outputs.concurrency) wait = until(claim.next_due, options.safety_poll);
        } catch (const std::exception& e) {
          note_database(false, "claim_downloads", &e);
          wait = std::min<std::chrono::steady_clock::duration>(options.safety_poll, 1s);
        }
      }
      if (downloads_woken || stopping) continue;
      co_await sleep(download_timer, wait);
    }
  }

  awaitable<void> download(db::DownloadJob job) {
    auto self = shared_from_this();
    auto cancellation = std::make_shared<outputs::Cancellation>();
    download_cancellations.push_back(cancellation);
    if (stopping) cancellation->cancel();
    outputs::DownloadRequest request;
    request.job_id = job.id;
    request.url = job.url;
    request.dir = options.outputs.dir;
    request.max_bytes = options.outputs.max_bytes;
    request.timeout = options.outputs.timeout;
    request.stall_timeout = std::min<std::chrono::milliseconds>(options.outputs.timeout, 60s);
    log::debug("download_started", {{"job", std::to_string(job.id)}, {"attempt", std::to_string(job.attempt)},
                                    {"url", outputs::redacted(job.url)}});
    outputs::DownloadResult result;
    try {
      result = co_await downloader->download(request, cancellation);
    } catch (const std::exception& e) {
      // Not expected (failures are results), but one job must not take the engine down.
      result.failure = outputs::FailureClass::transport;
      result.message = e.what();
    }
    std::erase(download_cancellations, cancellation);

    // What to record, decided once; the write below is retried while the database is away.
    auto settings = download_settings();
    ops::DownloadOutcome outcome = ops::DownloadOutcome::ok;
    std::optional<Duration> retry_after;
    std::string error_json;
    if (!result.ok && result.failure == outputs::FailureClass::interrupted) {
      outcome = ops::DownloadOutcome::interrupted;
    } else if (!result.ok) {
      boost::json::object error{{"class", outputs::to_string(result.failure)},
                                {"message", result.message},
                                {"attempt", job.attempt}};
      if (result.http_status != 0) error["status"] = result.http_status;
      error_json = boost::json::serialize(error);
      if (outputs::is_retryable(result.failure) && job.attempt < options.outputs.max_attempts) {
        outcome = ops::DownloadOutcome::retry;
        retry_after = api::retry_delay(job.attempt, options.outputs.retry_base, options.outputs.retry_max, unit_random());
      } else {
        outcome = ops::DownloadOutcome::gave_up;
      }
    }
    for (int attempt = 0;; ++attempt) {
      try {
        switch (outcome) {
          case ops::DownloadOutcome::ok: {
            auto path = result.path;
            auto bytes = static_cast<std::int64_t>(result.bytes);
            co_await pool.run([settings, id = job.id, path, bytes](pqxx::connection& c) {
              db::record_download_ok(c, settings, id, path, bytes);
            });
            break;
          }
          case ops::DownloadOutcome::interrupted:
            co_await pool.run([settings, id = job.id](pqxx::connection& c) { db::release_download(c, settings, id); });
            break;
          case ops::DownloadOutcome::retry:
          case ops::DownloadOutcome::gave_up:
            co_await pool.run([settings, id = job.id, error_json, retry_after](pqxx::connection& c) {
              return db::record_download_failed(c, settings, id, error_json, retry_after);
            });
            break;
        }
        note_database(true, "record_download");
        break;
      } catch (const std::exception& e) {
        note_database(false, "record_download", &e);
      }
      // Unrecorded, the claim's lease expires and the download runs again: no loss.
      if (stopping && attempt > 3) break;
      asio::steady_timer backoff(executor);
      co_await sleep(backoff, std::min<std::chrono::steady_clock::duration>(100ms * (1 << std::min(attempt, 5)), 3s));
    }
    metrics.downloads(outcome).Increment();
    const auto id = std::to_string(job.id);
    switch (outcome) {
      case ops::DownloadOutcome::ok:
        metrics.download_bytes().Increment(static_cast<double>(result.bytes));
        log::info("downloaded", {{"job", id}, {"path", result.path}, {"bytes", std::to_string(result.bytes)},
                                 {"attempt", std::to_string(job.attempt)}});
        break;
      case ops::DownloadOutcome::interrupted:
        log::info("download_interrupted", {{"job", id}});
        break;
      case ops::DownloadOutcome::retry:
        log::warning("download_failed", {{"job", id}, {"attempt", std::to_string(job.attempt)},
                                         {"class", outputs::to_string(result.failure)}, {"message", result.message}});
        break;
      case ops::DownloadOutcome::gave_up:
        log::error("download_gave_up", {{"job", id}, {"attempts", std::to_string(job.attempt)},
                                        {"class", outputs::to_string(result.failure)}, {"message", result.message}});
        break;
    }
    --downloads_running;
    if (stopping && downloads_running == 0) drained.cancel();
    wake_downloads();
  }

  // ---- credits ----------------------------------------------------------------------
  awaitable<void> credit_loop() {
    auto self = shared_from_this();
    while (!stopping) {
      std::chrono::steady_clock::duration wait = options.credits_refresh;
      try {
        auto settings = options.queue;
        auto token = co_await pool.run([settings](pqxx::connection& c) { return dispatcher::take_request_token(c, settings); });
        if (token) {
          wait = until(*token, options.credits_refresh);
        } else {
          request_started();
          auto result = co_await api.request(api::build_credits(endpoint()));
          request_finished();
          metrics.api_request_duration(ops::ApiCall::credits).Observe(std::chrono::duration<double>(result.elapsed).count());
          auto balance = api::parse_balance(result);
          auto observation = observation_of(result);
          auto outcome = balance.outcome;
          co_await pool.run([settings, outcome, observation](pqxx::connection& c) {
            dispatcher::record_response(c, settings, outcome, observation);
          });
          if (balance.balance) {
            auto value = *balance.balance;
            co_await pool.run([settings, value](pqxx::connection& c) { dispatcher::set_balance(c, settings, value); });
            metrics.credit_balance().Set(static_cast<double>(value));
            const bool low = value < options.low_balance_warning;
            ops::Metrics::set_flag(metrics.low_balance(), low);
            if (low && !warned_low_balance) log::warning("low_balance", {{"balance", std::to_string(value)}});
            warned_low_balance = low;
            log::debug("balance", {{"balance", std::to_string(value)}});
            wake();
          } else {
            log::warning("balance_query_failed", {{"class", api::to_string(outcome.outcome)}, {"message", outcome.message}});
            wait = std::min<std::chrono::steady_clock::duration>(wait, 5s);
          }
          // While the claim loop waits for credit, look again soon (a top-up).
          if (credit_poke) wait = std::min<std::chrono::steady_clock::duration>(wait, std::max<std::chrono::steady_clock::duration>(options.safety_poll, 1s));
          credit_poke = false;
        }
        note_database(true, "credits");
      } catch (const std::exception& e) {
        note_database(false, "credits", &e);
        wait = 1s;
      }
      co_await sleep(credit_timer, wait);
    }
  }

  // ---- LISTEN -----------------------------------------------------------------------
  struct Receiver : pqxx::notification_receiver {
    Receiver(pqxx::connection& c, State& s) : pqxx::notification_receiver(c, "klingq_jobs"), state(s) {}
    void operator()(const std::string& payload, int) override {
      state.wake();
      // "slot": some instance recorded a completion, maybe a video due for download.
      if (payload == "slot") state.wake_downloads();
    }
    State& state;
  };

  awaitable<void> listen_loop() {
    auto self = shared_from_this();
    int failures = 0;
    while (!stopping) {
      try {
        auto url = options.database_url;
        auto connection = co_await pool.run([url](pqxx::connection&) {
          return std::make_shared<pqxx::connection>(url);
        });
        Receiver receiver(*connection, *this);
        connection->get_notifs();
        listen_socket = std::make_unique<asio::posix::stream_descriptor>(executor, ::dup(connection->sock()));
        if (failures > 0) log::notice("listen_restored");
        failures = 0;
        wake();  // anything inserted while we were not listening
        while (!stopping) {
          boost::system::error_code ec;
          co_await listen_socket->async_wait(asio::posix::stream_descriptor::wait_read,
                                             asio::redirect_error(use_awaitable, ec));
          if (ec || stopping) break;
          connection->get_notifs();  // throws broken_connection when the server went away
        }
        listen_socket.reset();
      } catch (const std::exception& e) {
        listen_socket.reset();
        if (failures == 0) log::warning("listen_lost", {{"error", e.what()}});
        ++failures;
      }
      if (failures > 0 && !stopping) {
        asio::steady_timer backoff(executor);
        co_await sleep(backoff, std::min<std::chrono::steady_clock::duration>(200ms * (1 << std::min(failures, 5)), 5s));
      }
    }
  }

  // ---- heartbeat --------------------------------------------------------------------
  awaitable<void> heartbeat_loop() {
    auto self = shared_from_this();
    while (!stopping) {
      try {
        auto settings = options.queue;
        auto status = status_line();
        boost::json::object status_json{{"hold", dispatcher::to_string(last_hold)}, {"in_flight_requests", in_flight}};
        auto text = boost::json::serialize(status_json);
        snapshot = co_await pool.run([settings, text](pqxx::connection& c) { return dispatcher::heartbeat(c, settings, text); });
        note_database(true, "heartbeat");
        halted = snapshot.halted;
        if (!registered) {
          registered = true;
          wake_downloads();
        }
        publish_metrics();
      } catch (const std::exception& e) {
        note_database(false, "heartbeat", &e);
      }
      ops::sd::status(status_line());
      ops::sd::watchdog();
      auto period = options.heartbeat;
      if (auto watchdog = ops::sd::watchdog_interval()) {
        period = std::min<Duration>(period, std::chrono::duration_cast<Duration>(*watchdog / 3));
      }
      co_await sleep(heartbeat_timer, period);
    }
  }

  void publish_metrics() {
    const auto& s = snapshot;
    for (int i = 0; i < static_cast<int>(ops::job_state_count); ++i) metrics.jobs(static_cast<ops::JobState>(i)).Set(0);
    for (const auto& [name, count] : s.jobs_by_state) {
      static const char* names[] = {"queued", "dispatching", "submitted", "completed", "failed", "cancelled"};
      for (int i = 0; i < 6; ++i) if (name == names[i]) metrics.jobs(static_cast<ops::JobState>(i)).Set(static_cast<double>(count));
    }
    metrics.in_flight_jobs().Set(static_cast<double>(s.in_flight));
    metrics.parallel_limit().Set(static_cast<double>(s.limits.parallel_limit));
    metrics.daily_used().Set(static_cast<double>(s.limits.day_used));
    metrics.daily_limit().Set(static_cast<double>(s.limits.day_limit));
    metrics.limit(ops::Window::rpm).Set(static_cast<double>(s.limits.rpm_limit));
    metrics.limit(ops::Window::daily).Set(static_cast<double>(s.limits.day_limit));
    metrics.limit(ops::Window::parallel).Set(static_cast<double>(s.limits.parallel_limit));
    metrics.remaining(ops::Window::rpm).Set(static_cast<double>(s.limits.rpm_remaining.value_or(s.limits.rpm_limit)));
    metrics.remaining(ops::Window::daily).Set(static_cast<double>(std::max<std::int64_t>(0, s.limits.day_limit - s.limits.day_used)));
    metrics.remaining(ops::Window::parallel).Set(static_cast<double>(std::max<std::int64_t>(0, s.limits.parallel_limit - s.in_flight)));
    if (s.limits.rpm_reset_at) metrics.reset_timestamp(ops::Window::rpm).Set(to_epoch_seconds(*s.limits.rpm_reset_at));
    if (s.limits.day_reset_at) metrics.reset_timestamp(ops::Window::daily).Set(to_epoch_seconds(*s.limits.day_reset_at));
    if (s.balance) metrics.credit_balance().Set(static_cast<double>(*s.balance));
    metrics.instances().Set(static_cast<double>(s.instances));
    ops::Metrics::set_flag(metrics.halted(), s.halted);
    ops::Metrics::set_flag(metrics.paused(), s.paused);
    metrics.stuck_jobs().Set(static_cast<double>(s.stuck));
  }

  std::string status_line() const {
    std::int64_t queued = 0;
    for (const auto& [name, count] : snapshot.jobs_by_state) if (name == "queued") queued = count;
    std::string line = "queued " + std::to_string(queued) + ", in flight " + std::to_string(snapshot.in_flight) +
                       "/" + std::to_string(snapshot.limits.parallel_limit) + ", today " +
                       std::to_string(snapshot.limits.day_used) + "/" + std::to_string(snapshot.limits.day_limit);
    if (snapshot.balance) line += ", balance " + std::to_string(*snapshot.balance);
    if (last_hold != dispatcher::Hold::none) line += ", held by " + std::string(dispatcher::to_string(last_hold));
    if (!database_ok) line += ", DATABASE UNREACHABLE";
    return line;
  }

  // ---- webhooks ---------------------------------------------------------------------
  awaitable<http::Response> on_webhook(http::Request request) {
    auto self = shared_from_this();
    auto method = std::string(request.method_string());
    auto signature = std::string(request["X-Doitong-Signature"]);
    auto decision = webhook::decide(method, std::string(request.target()), signature, request.body(),
                                    options.webhook_secrets);
    auto respond = [](unsigned status, const std::string& message) {
      return http::make_response(status, boost::json::serialize(boost::json::object{{"message", message}}));
    };
    switch (decision.verdict) {
      case webhook::Verdict::bad_signature:
        metrics.webhooks(ops::WebhookResult::rejected_signature).Increment();
        log::warning("webhook_rejected", {{"reason", decision.reason}});
        co_return respond(401, decision.reason);
      case webhook::Verdict::wrong_method:
      case webhook::Verdict::not_found:
      case webhook::Verdict::bad_request:
        metrics.webhooks(ops::WebhookResult::bad_request).Increment();
        co_return respond(decision.http_status, decision.reason);
      case webhook::Verdict::ignore:
        metrics.webhooks(ops::WebhookResult::accepted).Increment();
        co_return respond(200, decision.reason);
      case webhook::Verdict::record:
        break;
    }
    try {
      auto settings = options.queue;
      auto completion = *decision.completion;
      auto applied = co_await pool.run([settings, completion](pqxx::connection& c) {
        return dispatcher::apply_completion(c, settings, completion);
      });
      note_database(true, "webhook");
      switch (applied.result) {
        case dispatcher::CompletionResult::applied:
          metrics.webhooks(ops::WebhookResult::accepted).Increment();
          if (applied.submit_to_complete_seconds) metrics.submit_to_complete().Observe(*applied.submit_to_complete_seconds);
          wake();  // the parallel slot is free now
          if (completion.status == "completed") wake_downloads();
          break;
        case dispatcher::CompletionResult::duplicate:
          metrics.webhooks(ops::WebhookResult::duplicate).Increment();
          break;
        case dispatcher::CompletionResult::unknown_stored:
          metrics.webhooks(ops::WebhookResult::unknown_job).Increment();
          log::info("webhook_for_unknown_job", {{"remote_id", completion.remote_id}});
          break;
      }
      co_return respond(200, "ok");
    } catch (const std::exception& e) {
      note_database(false, "webhook", &e);
      // 503 makes the provider deliver again later; nothing was recorded.
      co_return respond(503, "temporarily unable to record");
    }
  }

  // ---- lifecycle --------------------------------------------------------------------
  void spawn_loop(awaitable<void> (State::*loop)()) { spawn_loop((this->*loop)()); }
  void spawn_loop(awaitable<void> loop) {
    ++loops_running;
    auto self = shared_from_this();
    asio::co_spawn(executor, std::move(loop), [self](std::exception_ptr error) {
      if (error) {
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          log::error("loop_crashed", {{"error", e.what()}});
        }
      }
      if (--self->loops_running == 0) self->drained.cancel();
    });
  }

  void stop() {
    if (stopping) return;
    stopping = true;
    claim_timer.cancel();
    poll_timer.cancel();
    credit_timer.cancel();
    heartbeat_timer.cancel();
    wake_recorders();
    download_timer.cancel();
    if (listen_socket) listen_socket->cancel();
    // A download can take minutes, far beyond the grace: cut it short. Its attempt is
    // released uncounted and runs again on the next start (from scratch; the part file
    // is removed).
    auto running = download_cancellations;
    for (auto& cancellation : running) cancellation->cancel();
  }
};

Engine::Engine(asio::any_io_executor executor, db::Pool& pool, http::Client& api, ops::Metrics& metrics,
               EngineOptions options)
    : state_(std::make_shared<State>(executor, pool, api, metrics, std::move(options))) {}

Engine::~Engine() = default;

awaitable<void> Engine::run() {
  auto& s = *state_;
  {
    auto settings = s.options.queue;
    co_await s.pool.run([settings](pqxx::connection& c) { dispatcher::ensure_account(c, settings); });
    s.database_ok = true;
  }
  s.spawn_loop(&State::listen_loop);
  s.spawn_loop(&State::claim_loop);
  // Two record loops: while one group commits, the next is already being written (the
  // groups touch disjoint rows and, when the API charged what was expected, not the
  // account row).
  for (std::size_t i = 0; i < s.record_timers.size(); ++i) s.spawn_loop(s.record_loop(i));
  s.spawn_loop(&State::poll_loop);
  s.spawn_loop(&State::credit_loop);
  s.spawn_loop(&State::heartbeat_loop);
  s.spawn_loop(&State::download_loop);
  // Wait for stop(), then for the loops and every in-flight request, within the grace.
  while (!s.stopping) {
    s.drained.expires_at(std::chrono::steady_clock::time_point::max());
    boost::system::error_code ec;
    co_await s.drained.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  const auto deadline = std::chrono::steady_clock::now() + s.options.shutdown_grace;
  while ((s.in_flight > 0 || s.loops_running > 0 || s.downloads_running > 0) &&
         std::chrono::steady_clock::now() < deadline) {
    s.drained.expires_at(deadline);
    boost::system::error_code ec;
    co_await s.drained.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  if (s.in_flight > 0) log::warning("shutdown_with_requests_in_flight", {{"count", std::to_string(s.in_flight)}});
  try {
    auto settings = s.options.queue;
    auto download_settings = s.download_settings();
    auto released = co_await s.pool.run([settings, download_settings](pqxx::connection& c) {
      auto n = dispatcher::release_leases(c, settings);
      // Downloads that did not report within the grace: due again, uncounted.
      db::release_downloads(c, download_settings, true);
      dispatcher::remove_instance(c, settings);
      return n;
    });
    log::notice("stopped", {{"released_leases", std::to_string(released)}});
  } catch (const std::exception& e) {
    log::warning("shutdown_release_failed", {{"error", e.what()}});
  }
}

void Engine::stop() {
  state_->stop();
  state_->drained.cancel();
}

void Engine::wake() { state_->wake(); }

void Engine::reload(EngineOptions options) {
  auto& s = *state_;
  const bool key_changed = !(options.api_key == s.options.api_key);
  s.options = std::move(options);
  if (key_changed) {
    auto settings = s.options.queue;
    asio::co_spawn(s.executor, [state = state_, settings]() -> awaitable<void> {
      co_await state->pool.run([settings](pqxx::connection& c) { dispatcher::clear_halt(c, settings); });
      log::notice("halt_cleared", {{"why", "API key changed"}});
      state->wake();
    }, asio::detached);
  }
  {
    auto settings = s.options.queue;
    asio::co_spawn(s.executor, [state = state_, settings]() -> awaitable<void> {
      co_await state->pool.run([settings](pqxx::connection& c) { dispatcher::ensure_account(c, settings); });
      state->wake();
    }, asio::detached);
  }
}

http::Handler Engine::webhook_handler() {
  return [state = state_](http::Request request) { return state->on_webhook(std::move(request)); };
}

ops::ReadyState Engine::ready_state() const {
  ops::ReadyState ready;
  ready.database_reachable = state_->database_ok;
  ready.halted = state_->halted;
  ready.detail = state_->status_line();
  return ready;
}

std::string Engine::status_line() const { return state_->status_line(); }

}  // namespace klingq::dispatcher
