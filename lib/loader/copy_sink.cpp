// COPY FROM STDIN through libpqxx, in one transaction.
#include "loader/copy_sink.hpp"

#include <pqxx/except>
#include <pqxx/tablewriter>

#include <cstdlib>

namespace klingq::loader {

std::size_t copy_row_of(std::string_view message) {
  auto at = message.find("COPY ");
  if (at == std::string_view::npos) return 0;
  at = message.find(", line ", at);
  if (at == std::string_view::npos) return 0;
  return std::strtoull(message.data() + at + 7, nullptr, 10);
}

PgCopySink::PgCopySink(pqxx::connection& connection)
    : transaction_(std::make_unique<pqxx::work>(connection, "klingq submit")) {
  // Time stamps without a zone in the input are UTC, whatever the server's default.
  transaction_->exec("SET LOCAL TimeZone = 'UTC'");
}

PgCopySink::~PgCopySink() {
  // An unfinished transaction rolls back when it is destroyed; the writer goes first.
  writer_.reset();
}

void PgCopySink::begin_copy(const std::vector<Column>& columns) {
  std::vector<std::string> names;
  for (Column column : columns) names.emplace_back(name_of(column));
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  // The column names come from the fixed list in job.hpp, never from the input.
  writer_ = std::make_unique<pqxx::tablewriter>(*transaction_, "klingq.jobs", names.begin(),
                                                names.end());
#pragma GCC diagnostic pop
}

void PgCopySink::write(std::string_view rows) {
  // rows always ends with a newline, which write_raw_line puts back.
  chunk_.assign(rows.data(), rows.size() - 1);
  writer_->write_raw_line(chunk_);
}

void PgCopySink::end_copy() {
  try {
    writer_->complete();
    writer_.reset();
  } catch (const pqxx::sql_error& e) {
    writer_.reset();
    std::string message = e.what();
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
    throw CopyFailed(message, copy_row_of(message));
  }
}

void PgCopySink::commit() { transaction_->commit(); }

void PgCopySink::rollback() {
  writer_.reset();
  transaction_->abort();
}

}  // namespace klingq::loader
