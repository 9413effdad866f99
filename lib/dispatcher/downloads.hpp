// The downloads (outputs.download on): claims completed jobs whose video is due
// (db/outputs.hpp), at most outputs.concurrency at a time, and fetches each into
// outputs.dir (lib/outputs) over its own connection, never through the API client or
// its limits. A failed attempt is retried with the submit backoff up to
// outputs.max_attempts. Stop interrupts every running download at once: its attempt is
// released uncounted and runs again on the next start (from scratch; the part file is
// removed). Nothing is claimed before the heartbeat has registered this instance.
#pragma once

#include "db/outputs.hpp"
#include "dispatcher/context.hpp"
#include "dispatcher/heartbeat.hpp"
#include "dispatcher/loop.hpp"

#include <boost/asio/awaitable.hpp>

#include <memory>
#include <random>
#include <vector>

namespace klingq::outputs {
class Cancellation;
class Downloader;
}  // namespace klingq::outputs

namespace klingq::dispatcher {

class Downloads {
 public:
  Downloads(Context& context, const Heartbeat& heartbeat);
  ~Downloads();

  // The download loop, until stop. It sleeps on context.downloads_wanted.
  boost::asio::awaitable<void> run();
  // One claim of due downloads (after this process's start-up cleanup, the first
  // time); each download runs as a task of the group. Returns how long to sleep: zero
  // when the claim was full or a wake-up came meanwhile, else until the next download
  // is due (or, with every slot busy, until one frees), within the safety poll.
  boost::asio::awaitable<SteadyDuration> run_once();

  // Downloads running now.
  int running() const { return running_; }
  // This instance's download claims as the options say now (also for the release at
  // shutdown).
  db::DownloadSettings settings() const;

 private:
  boost::asio::awaitable<void> download(db::DownloadJob job);
  double unit_random() { return std::uniform_real_distribution<double>(0.0, 1.0)(random_); }

  Context& ctx_;
  const Heartbeat& heartbeat_;
  std::unique_ptr<outputs::Downloader> downloader_;
  bool started_ = false;  // this process's start-up cleanup is done
  int running_ = 0;
  // One per running download, so that stop can interrupt them.
  std::vector<std::shared_ptr<outputs::Cancellation>> cancellations_;
  std::mt19937_64 random_;  // the jitter of a retry's backoff
  StopSignal::Subscription on_stop_;
};

}  // namespace klingq::dispatcher
