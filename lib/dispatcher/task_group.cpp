// TaskGroup: a counter, a timer that join() sleeps on, and co_spawn with a completion
// handler that counts the task out.
#include "dispatcher/task_group.hpp"

#include "util/log.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>

namespace klingq::dispatcher {
namespace asio = boost::asio;

struct TaskGroup::State {
  explicit State(asio::any_io_executor executor) : executor(executor), idle(executor) {}
  asio::any_io_executor executor;
  asio::steady_timer idle;  // join() sleeps here; cancelled when the last task ends
  std::size_t running = 0;
};

namespace {

// The frame of this wrapper holds `owner` until the task's own frame is gone: the task
// is a local, destroyed before the parameters when the frame is torn down unresumed.
asio::awaitable<void> owned(std::shared_ptr<void> owner, asio::awaitable<void> task) {
  {
    auto running = std::move(task);
    co_await std::move(running);
  }
  owner.reset();
}

}  // namespace

TaskGroup::TaskGroup(asio::any_io_executor executor) : state_(std::make_shared<State>(std::move(executor))) {}

TaskGroup::~TaskGroup() = default;

void TaskGroup::keep_alive(std::weak_ptr<void> owner) { owner_ = std::move(owner); }

void TaskGroup::spawn(asio::awaitable<void> task, std::string name) {
  ++state_->running;
  asio::co_spawn(state_->executor, owned(owner_.lock(), std::move(task)),
                 [state = state_, name = std::move(name)](std::exception_ptr error) {
                   if (error) {
                     try {
                       std::rethrow_exception(error);
                     } catch (const std::exception& e) {
                       log::error("loop_crashed", {{"task", name}, {"error", e.what()}});
                     } catch (...) {
                       log::error("loop_crashed", {{"task", name}, {"error", "unknown exception"}});
                     }
                   }
                   if (--state->running == 0) state->idle.cancel();
                 });
}

std::size_t TaskGroup::running() const { return state_->running; }

asio::awaitable<bool> TaskGroup::join(std::chrono::steady_clock::time_point deadline) {
  auto state = state_;
  while (state->running > 0 && std::chrono::steady_clock::now() < deadline) {
    state->idle.expires_at(deadline);
    boost::system::error_code ec;  // operation_aborted: the last task ended
    co_await state->idle.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return state->running == 0;
}

}  // namespace klingq::dispatcher
