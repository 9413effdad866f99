// The I/O of one download: see downloader.hpp. The network side is lib/http's
// (http::StreamingGet: connect, TLS, request, header, body in chunks); what is here is
// what is particular to keeping a video: the part file and its lock, the size checks,
// fsync and rename, the redirect policy and the failure classes. No Beast header is
// included here (each one costs every translation unit that includes it).
//
// Model: up to 1 + max_redirects exchanges, each on a fresh connection (downloads are
// few and large, so keep-alive would buy nothing) and each under its own deadline. The
// final 200's body is read into a fixed chunk buffer, each chunk written to the part
// file on the file thread pool before the next read: memory per download is one chunk,
// whatever the video's size.
#include "outputs/downloader.hpp"

#include "http/streaming.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <type_traits>
#include <vector>

namespace klingq::outputs {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

// One read's worth of body, written to the file before the next read.
constexpr std::size_t chunk_size = 256 * 1024;
constexpr const char* user_agent = "klingq/0.1 (+outputs.download)";

std::string errno_text(const char* what, const std::string& path, int error) {
  return std::string(what) + " " + path + ": " + std::strerror(error);
}

// ---- the part file (blocking; runs on the file thread pool) ---------------------------

struct Opened {
  int fd = -1;
  std::string error;  // set when fd < 0
};

// Creates dir if needed and opens dir/.<id>.mp4.part for writing under an exclusive
// flock. Not O_TRUNC: truncating before holding the lock could destroy another
// process's download in progress. After locking, the path must still name the inode we
// locked, else the holder renamed or removed it meanwhile and we start over.
Opened open_part(const std::string& dir, const OutputPaths& paths, std::optional<std::uint64_t> expected) {
  Opened out;
  std::error_code mkdir_error;
  std::filesystem::create_directories(dir, mkdir_error);
  if (mkdir_error) {
    out.error = "cannot create " + dir + ": " + mkdir_error.message();
    return out;
  }
  if (expected) {
    // Fail before writing gigabytes into a disk that cannot hold them.
    struct statvfs fs{};
    if (::statvfs(dir.c_str(), &fs) == 0) {
      auto available = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
      if (available < *expected) {
        out.error = "not enough space in " + dir + ": " + std::to_string(available) + " bytes free, " +
                    std::to_string(*expected) + " needed";
        return out;
      }
    }
  }
  for (int tries = 0; tries < 3; ++tries) {
    int fd = ::open(paths.part_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      out.error = errno_text("cannot open", paths.part_path, errno);
      return out;
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int error = errno;
      ::close(fd);
      out.error = error == EWOULDBLOCK ? "another process is downloading " + paths.part_path
                                       : errno_text("cannot lock", paths.part_path, error);
      return out;
    }
    struct stat held{}, named{};
    if (::fstat(fd, &held) != 0 || ::stat(paths.part_path.c_str(), &named) != 0 ||
        held.st_ino != named.st_ino || held.st_dev != named.st_dev) {
      ::close(fd);
      continue;
    }
    if (::ftruncate(fd, 0) != 0) {
      int error = errno;
      ::unlink(paths.part_path.c_str());
      ::close(fd);
      out.error = errno_text("cannot truncate", paths.part_path, error);
      return out;
    }
    out.fd = fd;
    return out;
  }
  out.error = "the part file " + paths.part_path + " keeps changing under us";
  return out;
}

std::optional<std::string> write_all(int fd, const char* data, std::size_t size, const std::string& path) {
  while (size > 0) {
    auto written = ::write(fd, data, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno_text("cannot write", path, errno);
    }
    data += written;
    size -= static_cast<std::size_t>(written);
  }
  return std::nullopt;
}

// Durable, then visible: the data reaches the disk before the rename makes it
// dir/<id>.mp4, and the directory is synced so that the rename survives a power cut.
// The lock is held until the rename is done (see open_part). Closes fd either way.
std::optional<std::string> commit_part(int fd, const std::string& dir, const OutputPaths& paths,
                                       std::uint64_t expected_bytes) {
  auto fail = [&](std::string message) {
    ::unlink(paths.part_path.c_str());
    ::close(fd);
    return std::optional<std::string>(std::move(message));
  };
  if (::fsync(fd) != 0) return fail(errno_text("cannot fsync", paths.part_path, errno));
  struct stat written{};
  if (::fstat(fd, &written) != 0) return fail(errno_text("cannot stat", paths.part_path, errno));
  if (static_cast<std::uint64_t>(written.st_size) != expected_bytes) {
    return fail(paths.part_path + " holds " + std::to_string(written.st_size) + " bytes, expected " +
                std::to_string(expected_bytes));
  }
  if (::rename(paths.part_path.c_str(), paths.final_path.c_str()) != 0) {
    return fail(errno_text("cannot rename to", paths.final_path, errno));
  }
  ::close(fd);
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    // The file is complete and in place; a failed directory sync only weakens the
    // guarantee across a power cut, so it is not worth failing the download over.
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return std::nullopt;
}

void discard_part(int fd, const OutputPaths& paths) {
  ::unlink(paths.part_path.c_str());
  ::close(fd);
}

// Part files nobody holds a lock on are what a killed process left behind. Creates dir
// when missing (a failure shows up again, with its reason, in the first download).
int remove_unlocked_parts(const std::string& dir) {
  int removed = 0;
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    auto name = entry.path().filename().string();
    if (!name.starts_with(".") || !name.ends_with(".mp4.part")) continue;
    auto path = entry.path().string();
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) continue;
    struct stat held{}, named{};
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0 && ::fstat(fd, &held) == 0 && ::stat(path.c_str(), &named) == 0 &&
        held.st_ino == named.st_ino && held.st_dev == named.st_dev) {
      if (::unlink(path.c_str()) == 0) ++removed;
    }
    ::close(fd);
  }
  return removed;
}

// ---- the network side (on the caller's executor) --------------------------------------

struct Failure {
  FailureClass failure;
  std::string message;
};

// Header values compare ASCII case-blind ("Identity" is "identity"), as beast::iequals
// did when this file still included Beast.
bool iequals_ascii(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [&](char x, char y) { return lower(x) == lower(y); });
}

// Why connecting, sending or reading the header failed, in output_error's words.
Failure start_failure(const http::StreamingError& error, const Url& url, std::uint64_t max_bytes) {
  const auto& code = error.error;
  // The certificate problem or the proxy's answer, when there is one.
  const auto detail = error.detail.empty() ? std::string() : " (" + error.detail + ")";
  if (http::is_proxy_auth_required(code)) return {FailureClass::proxy_auth, error.detail};
  switch (error.step) {
    case http::Step::resolve:
      return {FailureClass::transport,
              "cannot resolve " + url.host + ": " + (http::is_timeout(code) ? "timed out" : code.message()) + detail};
    case http::Step::connect:
      return {FailureClass::transport, "cannot connect to " + url.host_header + ": " + code.message() + detail};
    case http::Step::tls:
      return {FailureClass::transport, "TLS with " + url.host_header + ": " + code.message() + detail};
    case http::Step::send:
      return {FailureClass::transport, "sending the request: " + code.message()};
    case http::Step::read_header:
      // The parser refuses a Content-Length above its body limit (outputs.max_bytes)
      // while it reads the header: the video is too large, and no retry makes it smaller.
      if (http::is_body_limit(code)) {
        return {FailureClass::too_large, "Content-Length exceeds outputs.max_bytes " + std::to_string(max_bytes)};
      }
      break;
    case http::Step::read_body:
      break;
  }
  return {FailureClass::transport,
          "reading the response headers: " + (http::is_timeout(code) ? std::string("timed out") : code.message())};
}

}  // namespace

struct Downloader::State {
  State(asio::any_io_executor executor_in, http::ConnectOptions connect)
      : executor(std::move(executor_in)), connector(executor, connect) {}

  asio::any_io_executor executor;
  // Every download's connection, with the API client's connect path and TLS policy.
  http::Connector connector;
  // Two threads: one download's fsync of a large file does not hold up another's writes.
  asio::thread_pool files{2};

  // Runs a blocking function on the file pool and resumes the caller on its executor.
  // Not a coroutine itself, for the reason db::Pool::run gives.
  template <typename Function>
  auto on_file_thread(Function function) -> asio::awaitable<std::invoke_result_t<Function>> {
    using Result = std::invoke_result_t<Function>;
    auto shared = std::make_shared<Function>(std::move(function));
    return asio::co_spawn(
        files.get_executor(), [shared]() -> asio::awaitable<Result> { co_return (*shared)(); },
        asio::use_awaitable);
  }
};

namespace {

// What one exchange ended with: a redirect to follow, a finished file, or a failure.
struct Exchange {
  std::optional<Url> redirect;
  std::optional<Failure> failure;
  unsigned status = 0;
  std::uint64_t bytes = 0;
  // False when resolve, connect or TLS failed: no exchange took place, and the result
  // keeps the status of the hop before (the redirect that led to this origin).
  bool connected = true;
};

bool is_redirect(unsigned status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

}  // namespace

Downloader::Downloader(asio::any_io_executor executor, http::ConnectOptions connect)
    : state_(std::make_shared<State>(std::move(executor), connect)) {}

Downloader::~Downloader() {
  // Work not started is dropped; a write or fsync in progress finishes first.
  state_->files.stop();
  state_->files.join();
}

asio::awaitable<int> Downloader::remove_stale_parts(std::string dir) {
  auto state = state_;
  co_return co_await state->on_file_thread([dir] { return remove_unlocked_parts(dir); });
}

asio::awaitable<DownloadResult> Downloader::download(DownloadRequest request,
                                                     std::shared_ptr<Cancellation> cancellation) {
  auto state = state_;
  DownloadResult result;
  auto fail = [&](FailureClass failure, std::string message) {
    result.ok = false;
    result.failure = cancellation->cancelled() ? FailureClass::interrupted : failure;
    result.message = cancellation->cancelled() ? "klingqd is stopping" : std::move(message);
    return result;
  };
  auto url = parse_url(request.url);
  if (!url) co_return fail(FailureClass::invalid_url, "not an http(s) URL: " + redacted(request.url));
  const auto paths = output_paths(request.dir, request.job_id);

  for (int hop = 0;; ++hop) {
    if (cancellation->cancelled()) co_return fail(FailureClass::interrupted, "");
    const auto deadline = Clock::now() + request.timeout;
    // The exchange: one GET on a fresh connection, closed when `get` goes.
    http::StreamingGet get(state->connector);
    auto exchange = [&]() -> asio::awaitable<Exchange> {
      Exchange out;
      http::StreamingRequest get_request;
      get_request.origin = http::Origin{url->tls, url->host, url->port};
      get_request.host_header = url->host_header;
      get_request.target = url->target;
      get_request.headers = {{"User-Agent", user_agent},
                             {"Accept-Encoding", "identity"}};  // the bytes as stored, to check and keep
      get_request.body_limit = request.max_bytes;
      get_request.stall_timeout = request.stall_timeout;  // a stalled transfer fails well before the deadline
      get_request.deadline = deadline;
      if (auto error = co_await get.start(std::move(get_request), &cancellation->interrupt_)) {
        out.failure = start_failure(error, *url, request.max_bytes);
        out.connected = error.step != http::Step::resolve && error.step != http::Step::connect &&
                        error.step != http::Step::tls;
        co_return out;
      }
      out.status = get.status();
      if (is_redirect(out.status)) {
        auto location = get.header("Location");
        auto next = resolve_location(*url, location);
        if (!next) {
          out.failure = Failure{FailureClass::invalid_url, "HTTP " + std::to_string(out.status) +
                                                               " to an unusable Location: " + redacted(location)};
        } else if (url->tls && !next->tls) {
          out.failure = Failure{FailureClass::redirects, "refused a redirect from https to " + redacted(*next)};
        } else {
          out.redirect = std::move(next);
        }
        co_return out;
      }
      if (out.status == 407) {
        // Plain http through the proxy: its refusal comes as the response.
        out.failure = Failure{FailureClass::proxy_auth, "HTTP 407 from the proxy for " + redacted(*url)};
        co_return out;
      }
      if (out.status != 200) {
        out.failure = Failure{FailureClass::http_status, "HTTP " + std::to_string(out.status) + " from " + redacted(*url)};
        co_return out;
      }
      auto encoding = get.header("Content-Encoding");
      if (!encoding.empty() && !iequals_ascii(encoding, "identity")) {
        out.failure = Failure{FailureClass::http_status,
                              "unexpected Content-Encoding " + encoding + " from " + redacted(*url)};
        co_return out;
      }
      const std::optional<std::uint64_t> content_length = get.content_length();
      if (content_length && *content_length > request.max_bytes) {
        out.failure = Failure{FailureClass::too_large, *size_problem(content_length, 0, request.max_bytes)};
        co_return out;
      }

      auto dir = request.dir;
      auto opened = co_await state->on_file_thread([dir, paths, content_length] {
        return open_part(dir, paths, content_length);
      });
      if (opened.fd < 0) {
        out.failure = Failure{FailureClass::filesystem, opened.error};
        co_return out;
      }
      // From here the part file is ours; every way out below removes it unless renamed.
      // (If this frame is destroyed mid-await at exit, the guard still cleans up.)
      struct PartGuard {
        int fd;
        OutputPaths paths;
        bool active = true;
        ~PartGuard() {
          if (active) discard_part(fd, paths);
        }
      } part{opened.fd, paths};

      std::vector<char> chunk(chunk_size);
      std::uint64_t received = 0;
      while (!get.body_done()) {
        auto chunk_read = co_await get.read_body(chunk);
        const std::size_t got = chunk_read.bytes;
        const auto& read_error = chunk_read.error;
        if (got > 0) {
          received += got;
          int fd = part.fd;
          const char* data = chunk.data();
          auto path = paths.part_path;
          auto write_error = co_await state->on_file_thread([fd, data, got, path] { return write_all(fd, data, got, path); });
          if (write_error) {
            out.failure = Failure{FailureClass::filesystem, *write_error};
            co_return out;
          }
        }
        if (read_error) {
          if (http::is_body_limit(read_error.error)) {
            out.failure = Failure{FailureClass::too_large, "body exceeds outputs.max_bytes " + std::to_string(request.max_bytes)};
          } else if (http::is_timeout(read_error.error)) {
            out.failure = Failure{FailureClass::transport,
                                  Clock::now() >= deadline ? "deadline of the download exceeded after " + std::to_string(received) + " bytes"
                                                           : "transfer stalled after " + std::to_string(received) + " bytes"};
          } else {
            out.failure = Failure{FailureClass::transport, "reading the body after " + std::to_string(received) +
                                                               " bytes: " + read_error.error.message()};
          }
          co_return out;
        }
      }
      if (auto problem = size_problem(content_length, received, request.max_bytes)) {
        out.failure = Failure{FailureClass::size, *problem};
        co_return out;
      }
      get.close();  // nothing more to read; the fsync below may take a while
      part.active = false;
      auto commit_error = co_await state->on_file_thread([fd = part.fd, dir, paths, received] {
        return commit_part(fd, dir, paths, received);
      });
      if (commit_error) {
        out.failure = Failure{FailureClass::filesystem, *commit_error};
        co_return out;
      }
      out.bytes = received;
      co_return out;
    };

    Exchange outcome = co_await exchange();
    get.close();
    if (outcome.connected) result.http_status = outcome.status;
    if (outcome.failure) co_return fail(outcome.failure->failure, std::move(outcome.failure->message));
    if (outcome.redirect) {
      if (hop >= request.max_redirects) {
        co_return fail(FailureClass::redirects, "more than " + std::to_string(request.max_redirects) + " redirects");
      }
      url = std::move(outcome.redirect);
      continue;
    }
    result.ok = true;
    result.path = paths.final_path;
    result.bytes = outcome.bytes;
    co_return result;
  }
}

}  // namespace klingq::outputs
