// The loop pieces of loop.hpp: backoff, until, sleep_for, StopSignal, Wakeup.
#include "dispatcher/loop.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <utility>
#include <vector>

namespace klingq::dispatcher {
namespace asio = boost::asio;
using namespace std::chrono_literals;

SteadyDuration backoff(int failures, SteadyDuration base, SteadyDuration cap) {
  const int doublings = std::clamp(failures, 0, 5);
  return std::min<SteadyDuration>(base * (1 << doublings), cap);
}

SteadyDuration until(TimePoint at, SteadyDuration cap, TimePoint now) {
  if (at == TimePoint::max() || at - now > cap) return cap;
  if (at <= now) return 1ms;
  return std::chrono::duration_cast<SteadyDuration>(at - now) + 1ms;
}

asio::awaitable<void> sleep_for(SteadyDuration d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  boost::system::error_code ignored;  // only cancellation, when the io_context goes away
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
}

StopSignal::Subscription::Subscription(Subscription&& other) noexcept
    : signal_(std::exchange(other.signal_, nullptr)), id_(other.id_) {}

StopSignal::Subscription& StopSignal::Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    if (signal_) signal_->subscribers_.erase(id_);
    signal_ = std::exchange(other.signal_, nullptr);
    id_ = other.id_;
  }
  return *this;
}

StopSignal::Subscription::~Subscription() {
  if (signal_) signal_->subscribers_.erase(id_);
}

void StopSignal::request() {
  if (requested_) return;
  requested_ = true;
  // A subscriber may unsubscribe another (or itself) while we go: walk by id.
  std::vector<std::uint64_t> ids;
  for (const auto& [id, callback] : subscribers_) ids.push_back(id);
  for (auto id : ids) {
    auto it = subscribers_.find(id);
    if (it != subscribers_.end()) it->second();
  }
}

StopSignal::Subscription StopSignal::subscribe(std::function<void()> on_stop) {
  if (requested_) on_stop();
  const auto id = next_id_++;
  subscribers_.emplace(id, std::move(on_stop));
  return Subscription(this, id);
}

Wakeup::Wakeup(asio::any_io_executor executor, StopSignal& stop)
    : timer_(std::move(executor)), on_stop_(stop.subscribe([this] { timer_.cancel(); })) {}

asio::awaitable<void> Wakeup::sleep(SteadyDuration d) {
  timer_.expires_after(d);
  boost::system::error_code ec;  // operation_aborted: notify() or stop, both expected
  co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

}  // namespace klingq::dispatcher
