// Completions and their order: the advisory lock per remote job that serialises a
// submit's record with that job's webhooks, and klingq.webhook_inbox, where a webhook
// that beat its submit record waits. Typed statements only.
#pragma once

#include <pqxx/transaction_base>

#include <string>
#include <vector>

namespace klingq::db {

namespace remote {
void lock(pqxx::transaction_base& tx, const std::string& remote_id);
// Several at once, in one order (no deadlock between two groups sharing an id).
void lock_many(pqxx::transaction_base& tx, const std::vector<std::string>& remote_ids);
}  // namespace remote

namespace inbox {
struct Entry {
  std::string remote_id;
  std::string status;
  std::string url;
  std::string metadata_json = "{}";
  std::string error;
};
void put(pqxx::transaction_base& tx, const Entry& entry);
// Takes (deletes and returns) the entries of these remote ids.
std::vector<Entry> take(pqxx::transaction_base& tx, const std::vector<std::string>& remote_ids);
}  // namespace inbox

}  // namespace klingq::db
