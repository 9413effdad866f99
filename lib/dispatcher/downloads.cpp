// Downloads: the claim round, and one coroutine per download that records its end.
#include "dispatcher/downloads.hpp"

#include "ops/metrics.hpp"
#include "outputs/downloader.hpp"
#include "util/log.hpp"

#include <boost/json.hpp>

#include <algorithm>

namespace klingq::dispatcher {
namespace asio = boost::asio;
using namespace std::chrono_literals;

Downloads::Downloads(Context& context, const Heartbeat& heartbeat)
    : ctx_(context),
      heartbeat_(heartbeat),
      // The API client's proxy and trust store: a video is fetched the way the API is reached.
      downloader_(std::make_unique<outputs::Downloader>(context.executor, context.api.connect_options())),
      random_(std::random_device{}()),
      on_stop_(context.stop.subscribe([this] {
        // A download can take minutes, far beyond the grace: cut it short.
        auto running = cancellations_;
        for (auto& cancellation : running) cancellation->cancel();
      })) {}

Downloads::~Downloads() = default;

db::DownloadSettings Downloads::settings() const {
  db::DownloadSettings settings;
  settings.instance = ctx_.options.queue.instance;
  settings.max_attempts = ctx_.options.outputs.max_attempts;
  // Longer than an attempt can last, so a live owner's claim never expires under it.
  settings.lease = std::chrono::duration_cast<Duration>(ctx_.options.outputs.timeout) + std::chrono::seconds(60);
  return settings;
}

asio::awaitable<void> Downloads::run() {
  co_await run_loop(ctx_.downloads_wanted, [this] { return !ctx_.stop.requested(); }, [this] { return run_once(); });
}

asio::awaitable<SteadyDuration> Downloads::run_once() {
  ctx_.downloads_wanted.take();  // a wake-up that came before this round is answered by it
  SteadyDuration wait = ctx_.options.safety_poll;
  // Off (it may be turned on by SIGHUP), or waiting for the first heartbeat: until the
  // instance row exists, other instances would take our claims for a dead instance's.
  if (ctx_.options.outputs.download && heartbeat_.registered()) {
    try {
      auto settings = this->settings();
      if (!started_) {
        // Claims of an earlier process with this instance id (killed) are due again
        // now, and the part files nobody holds any more are removed.
        auto released = co_await ctx_.pool.run([settings](pqxx::connection& c) {
          return db::release_downloads(c, settings, false);
        });
        auto removed = co_await downloader_->remove_stale_parts(ctx_.options.outputs.dir);
        log::notice("downloads_on", {{"dir", ctx_.options.outputs.dir},
                                     {"released_claims", std::to_string(released)},
                                     {"removed_part_files", std::to_string(removed)}});
        started_ = true;
      }
      const std::int64_t wanted = std::max(0, ctx_.options.outputs.concurrency - running_);
      auto claim = co_await ctx_.pool.run([settings, wanted](pqxx::connection& c) {
        return db::claim_downloads(c, settings, wanted);
      });
      ctx_.health.note_database(true, "claim_downloads");
      if (claim.gave_up > 0) {
        ctx_.metrics.downloads(ops::DownloadOutcome::gave_up).Increment(static_cast<double>(claim.gave_up));
        log::warning("downloads_abandoned", {{"count", std::to_string(claim.gave_up)}});
      }
      for (auto& job : claim.jobs) {
        ++running_;
        ctx_.tasks.spawn(download(std::move(job)), "download");
      }
      if (static_cast<std::int64_t>(claim.jobs.size()) == wanted && wanted > 0) co_return SteadyDuration::zero();  // maybe more
      // With every slot busy, a finishing download wakes us.
      if (running_ < ctx_.options.outputs.concurrency) wait = until(claim.next_due, ctx_.options.safety_poll);
    } catch (const std::exception& e) {
      ctx_.health.note_database(false, "claim_downloads", &e);
      wait = std::min<SteadyDuration>(ctx_.options.safety_poll, 1s);
    }
  }
  if (ctx_.downloads_wanted.pending()) co_return SteadyDuration::zero();
  co_return wait;
}

asio::awaitable<void> Downloads::download(db::DownloadJob job) {
  auto cancellation = std::make_shared<outputs::Cancellation>();
  cancellations_.push_back(cancellation);
  if (ctx_.stop.requested()) cancellation->cancel();
  const auto& options = ctx_.options.outputs;  // read before the first co_await only
  outputs::DownloadRequest request;
  request.job_id = job.id;
  request.url = job.url;
  request.dir = options.dir;
  request.max_bytes = options.max_bytes;
  request.timeout = options.timeout;
  request.stall_timeout = std::min<std::chrono::milliseconds>(options.timeout, 60s);
  log::debug("download_started", {{"job", std::to_string(job.id)}, {"attempt", std::to_string(job.attempt)},
                                  {"url", outputs::redacted(job.url)}});
  outputs::DownloadResult result;
  try {
    result = co_await downloader_->download(request, cancellation);
  } catch (const std::exception& e) {
    // Not expected (failures are results), but one job must not take the engine down.
    result.failure = outputs::FailureClass::transport;
    result.message = e.what();
  }
  std::erase(cancellations_, cancellation);

  // What to record, decided once; the write below is retried while the database is away.
  auto settings = this->settings();
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
    const auto& current = ctx_.options.outputs;  // as reloaded meanwhile, if it was
    if (outputs::is_retryable(result.failure) && job.attempt < current.max_attempts) {
      outcome = ops::DownloadOutcome::retry;
      retry_after = api::retry_delay(job.attempt, current.retry_base, current.retry_max, unit_random());
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
          co_await ctx_.pool.run([settings, id = job.id, path, bytes](pqxx::connection& c) {
            db::record_download_ok(c, settings, id, path, bytes);
          });
          break;
        }
        case ops::DownloadOutcome::interrupted:
          co_await ctx_.pool.run([settings, id = job.id](pqxx::connection& c) { db::release_download(c, settings, id); });
          break;
        case ops::DownloadOutcome::retry:
        case ops::DownloadOutcome::gave_up:
          co_await ctx_.pool.run([settings, id = job.id, error_json, retry_after](pqxx::connection& c) {
            return db::record_download_failed(c, settings, id, error_json, retry_after);
          });
          break;
      }
      ctx_.health.note_database(true, "record_download");
      break;
    } catch (const std::exception& e) {
      ctx_.health.note_database(false, "record_download", &e);
    }
    // Unrecorded, the claim's lease expires and the download runs again: no loss.
    if (ctx_.stop.requested() && attempt > 3) break;
    co_await sleep_for(backoff(attempt, 100ms, 3s));
  }
  ctx_.metrics.downloads(outcome).Increment();
  const auto id = std::to_string(job.id);
  switch (outcome) {
    case ops::DownloadOutcome::ok:
      ctx_.metrics.download_bytes().Increment(static_cast<double>(result.bytes));
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
  --running_;
  ctx_.downloads_wanted.notify();  // a slot is free
}

}  // namespace klingq::dispatcher
