// The owner of every coroutine the engine starts: the service loops, and the per-job
// submits, polls and downloads. A task is counted from spawn() until it returns (or
// throws: the exception is logged and ends only that task), and join() waits until
// none is left, within a deadline. Nothing the engine starts is detached: shutdown is
// "stop, then join" (STYLE.md rule 7).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

namespace klingq::dispatcher {

class TaskGroup {
 public:
  explicit TaskGroup(boost::asio::any_io_executor executor);
  ~TaskGroup();
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  // What every task keeps alive while its frame exists: the object that owns the
  // services the tasks run in. Only matters for a task join() gave up on, whose frame
  // is destroyed later with the io_context; a task that ended touches nothing.
  void keep_alive(std::weak_ptr<void> owner);

  // Starts task on the executor. `name` says in the log which task threw, if one does.
  void spawn(boost::asio::awaitable<void> task, std::string name);

  // Tasks started and not yet ended.
  std::size_t running() const;

  // Until no task is running (true) or the deadline passes (false). Tasks spawned
  // while waiting are waited for too. One joiner at a time (the engine's run()).
  boost::asio::awaitable<bool> join(std::chrono::steady_clock::time_point deadline);

 private:
  struct State;
  std::shared_ptr<State> state_;  // shared with each task's completion handler
  std::weak_ptr<void> owner_;
};

}  // namespace klingq::dispatcher
