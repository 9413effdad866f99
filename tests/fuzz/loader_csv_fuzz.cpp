// `klingq submit` of a CSV file: the header, RFC 4180 records (quotes, CRLF, newlines
// inside quotes) and the validation of every record.
#include "loader_checks.hpp"

namespace klingq::fuzz {

int fuzz_loader_csv(const std::uint8_t* data, std::size_t size) {
  return read_all(loader::Format::csv, as_text(data, size));
}

}  // namespace klingq::fuzz

KLINGQ_FUZZ_ENTRY(fuzz_loader_csv)
