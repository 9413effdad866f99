// Downloads one finished video into outputs.dir: an HTTP/1.1 GET over its own
// connection (http, or https through OpenSSL with the certificate chain and host name
// verified), following up to a few redirects, streamed to dir/.<id>.mp4.part in chunks
// (the body is never held in memory), checked against Content-Length and
// outputs.max_bytes, fsynced and renamed to dir/<id>.mp4, then the directory fsynced.
// On any failure the part file is removed. It connects the way the API client does
// (lib/http's Connector and StreamingGet) but shares no connection or limit with it: a
// download never waits for, or spends, the API's connections or limits.
//
// Blocking file work (open, write, fsync, rename) runs on the downloader's own small
// thread pool so that a slow disk never stalls the network thread; sockets stay on the
// caller's executor. Two processes downloading the same job at once (a claim that
// outlived its lease) cannot corrupt each other's file: the part file is held under an
// exclusive flock, and a loser of that race fails its attempt instead of truncating
// the winner's data.
#pragma once

#include "http/connect.hpp"
#include "outputs/download.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace klingq::outputs {

struct DownloadRequest {
  std::int64_t job_id = 0;
  std::string url;                             // as the API reported it
  std::string dir;                             // outputs.dir
  std::uint64_t max_bytes = std::uint64_t{2} << 30;
  std::chrono::milliseconds timeout{1800000};  // one exchange: connect, headers, body
  std::chrono::milliseconds stall_timeout{60000};  // no byte for this long fails sooner
  int max_redirects = 5;
};

struct DownloadResult {
  bool ok = false;
  std::string path;         // the final file, when ok
  std::uint64_t bytes = 0;  // its size, when ok
  FailureClass failure = FailureClass::transport;  // when !ok
  std::string message;      // when !ok; URLs in it are redacted
  unsigned http_status = 0;  // the last status received, 0 if none
};

// Lets the engine abort a running download (shutdown). Used on the downloader's
// executor only.
class Cancellation {
 public:
  // Aborts the current network operation; the download then ends as `interrupted`
  // and removes its part file.
  void cancel() { interrupt_.trigger(); }
  bool cancelled() const { return interrupt_.triggered(); }

 private:
  friend class Downloader;
  http::Interrupt interrupt_;  // closes whatever the download is waiting on now
};

class Downloader {
 public:
  // executor: where sockets live (the engine's network thread). connect: the same
  // options the API client connects with (verify_tls false is for tests against
  // self-signed servers only).
  explicit Downloader(boost::asio::any_io_executor executor, http::ConnectOptions connect = {});
  ~Downloader();
  Downloader(const Downloader&) = delete;
  Downloader& operator=(const Downloader&) = delete;

  // One attempt. Never throws for network, HTTP or file problems: they are results.
  boost::asio::awaitable<DownloadResult> download(DownloadRequest request,
                                                  std::shared_ptr<Cancellation> cancellation);

  // Creates dir if missing, removes dir/.*.mp4.part files that no process holds (left by
  // a killed one) and returns how many. Parts another live process writes are locked
  // and kept.
  boost::asio::awaitable<int> remove_stale_parts(std::string dir);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace klingq::outputs
