// The CopySink that loads into PostgreSQL: COPY klingq.jobs FROM STDIN inside one
// transaction around every COPY of a load, so a failed or refused load inserts nothing.
//
// Why pqxx::tablewriter (deprecated in libpqxx 6.4) rather than stream_to: stream_to
// converts every field through libpqxx's string traits, and its raw-line writer is
// private; tablewriter::write_raw_line passes text that is already in COPY format
// straight to PQputCopyData. A "line" handed to it may hold many rows: COPY data is a
// byte stream, so 256 KiB of rows go out in one call. (libpq itself cannot be called
// directly: the build links only libpqxx.)
#pragma once

#include "loader/load.hpp"

#include <pqxx/connection>
#include <pqxx/transaction>

#include <memory>
#include <string>

namespace pqxx {
class tablewriter;
}

namespace klingq::loader {

class PgCopySink final : public CopySink {
 public:
  // Opens the transaction on connection (which must outlive the sink).
  explicit PgCopySink(pqxx::connection& connection);
  ~PgCopySink() override;
  PgCopySink(const PgCopySink&) = delete;
  PgCopySink& operator=(const PgCopySink&) = delete;

  void begin_copy(const std::vector<Column>& columns) override;
  void write(std::string_view rows) override;
  void end_copy() override;
  void commit() override;
  void rollback() override;

 private:
  std::unique_ptr<pqxx::work> transaction_;
  std::unique_ptr<pqxx::tablewriter> writer_;
  std::string chunk_;  // rows without their final newline (write_raw_line adds it)
};

// The COPY row number in a server error ("CONTEXT:  COPY jobs, line 12, column ..."),
// or 0.
std::size_t copy_row_of(std::string_view server_message);

}  // namespace klingq::loader
