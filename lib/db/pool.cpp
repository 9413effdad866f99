#include "db/pool.hpp"

namespace klingq::db {

Pool::Pool(std::string url, int size) : url_(std::move(url)), threads_(static_cast<std::size_t>(size)) {}

Pool::~Pool() { stop(); }

void Pool::stop() {
  threads_.join();
  std::lock_guard lock(mutex_);
  idle_.clear();
}

std::unique_ptr<pqxx::connection> Pool::acquire() {
  {
    std::lock_guard lock(mutex_);
    while (!idle_.empty()) {
      auto connection = std::move(idle_.back());
      idle_.pop_back();
      if (connection->is_open()) return connection;
    }
  }
  return std::make_unique<pqxx::connection>(url_);
}

void Pool::release(std::unique_ptr<pqxx::connection> connection) {
  std::lock_guard lock(mutex_);
  idle_.push_back(std::move(connection));
}

}  // namespace klingq::db
