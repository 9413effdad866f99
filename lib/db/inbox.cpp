// See inbox.hpp.
#include "db/inbox.hpp"

#include "db/sql_statements.hpp"
#include "db/statement.hpp"

#include <boost/json.hpp>

namespace klingq::db {
using namespace detail;

namespace {
std::string json_array(const std::vector<std::string>& values) {
  boost::json::array array;
  for (const auto& v : values) array.push_back(boost::json::string(v));
  return boost::json::serialize(array);
}
}  // namespace

void remote::lock(pqxx::transaction_base& tx, const std::string& remote_id) {
  exec(tx, sql::remote_lock, remote_id);
}

void remote::lock_many(pqxx::transaction_base& tx, const std::vector<std::string>& remote_ids) {
  exec(tx, sql::remote_lock_many, json_array(remote_ids));
}

void inbox::put(pqxx::transaction_base& tx, const Entry& e) {
  exec(tx, sql::inbox_put, e.remote_id, e.status, e.url, e.metadata_json, e.error);
}

std::vector<inbox::Entry> inbox::take(pqxx::transaction_base& tx, const std::vector<std::string>& remote_ids) {
  std::vector<Entry> out;
  for (const auto& row : exec(tx, sql::inbox_take, json_array(remote_ids))) {
    out.push_back({row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>(),
                   row[3].as<std::string>(), row[4].as<std::string>()});
  }
  return out;
}

}  // namespace klingq::db
