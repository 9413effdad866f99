// `klingq submit` of a JSON-lines file: one object per line, typed values, validation.
#include "loader_checks.hpp"

namespace klingq::fuzz {

int fuzz_loader_jsonl(const std::uint8_t* data, std::size_t size) {
  return read_all(loader::Format::jsonl, as_text(data, size));
}

}  // namespace klingq::fuzz

KLINGQ_FUZZ_ENTRY(fuzz_loader_jsonl)
