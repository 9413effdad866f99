// Blocking libpqxx work kept off the network thread: a small thread pool, each call
// borrowing one connection. `co_await pool.run(fn)` runs fn(connection&) on a pool
// thread and resumes the caller on its own executor. A connection that broke is
// dropped and the next call opens a fresh one, so a PostgreSQL restart heals itself.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <pqxx/connection>
#include <pqxx/except>

#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

namespace klingq::db {

class Pool {
 public:
  Pool(std::string url, int size);
  ~Pool();

  // Not itself a coroutine: GCC 12 destroys by-value coroutine parameters holding
  // lambdas twice, so the function travels in a shared_ptr owned by co_spawn's frame.
  template <typename Function>
  auto run(Function function) -> boost::asio::awaitable<std::invoke_result_t<Function, pqxx::connection&>> {
    using Result = std::invoke_result_t<Function, pqxx::connection&>;
    auto shared = std::make_shared<Function>(std::move(function));
    return boost::asio::co_spawn(
        threads_.get_executor(),
        [this, shared]() -> boost::asio::awaitable<Result> { co_return call(*shared); },
        boost::asio::use_awaitable);
  }

  // The same, blocking the calling thread (start-up, CLI-like paths, tests).
  template <typename Function>
  auto run_blocking(Function function) {
    return call(function);
  }

  void stop();

 private:
  template <typename Function>
  auto call(Function& function) {
    auto connection = acquire();
    try {
      if constexpr (std::is_void_v<std::invoke_result_t<Function, pqxx::connection&>>) {
        function(*connection);
        release(std::move(connection));
      } else {
        auto result = function(*connection);
        release(std::move(connection));
        return result;
      }
    } catch (const pqxx::broken_connection&) {
      throw;  // the connection is dropped with the unique_ptr
    } catch (...) {
      // An SQL error leaves the connection usable (the transaction was rolled back).
      if (connection->is_open()) release(std::move(connection));
      throw;
    }
  }
  std::unique_ptr<pqxx::connection> acquire();
  void release(std::unique_ptr<pqxx::connection> connection);

  std::string url_;
  boost::asio::thread_pool threads_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;
};

}  // namespace klingq::db
