// The fuzz targets over klingq's parsers of untrusted bytes. Each target is one named
// function (so that klingq_fuzz_replay can link all of them into one executable for the
// CI smoke); built with KLINGQ_LIBFUZZER, a target's file also defines libFuzzer's
// LLVMFuzzerTestOneInput over its function. A target returns 0 and calls require() for
// the properties it checks beyond "no crash, no sanitizer report".
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace klingq::fuzz {

using Target = int (*)(const std::uint8_t* data, std::size_t size);

int fuzz_headers(const std::uint8_t* data, std::size_t size);
int fuzz_webhook(const std::uint8_t* data, std::size_t size);
int fuzz_api_response(const std::uint8_t* data, std::size_t size);
int fuzz_config(const std::uint8_t* data, std::size_t size);
int fuzz_loader_csv(const std::uint8_t* data, std::size_t size);
int fuzz_loader_jsonl(const std::uint8_t* data, std::size_t size);

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A broken property is a crash: libFuzzer saves the input, the replay test fails.
inline void require(bool holds, const char* property) {
  if (holds) return;
  std::fprintf(stderr, "fuzz property violated: %s\n", property);
  std::abort();
}

}  // namespace klingq::fuzz

#ifdef KLINGQ_LIBFUZZER
#define KLINGQ_FUZZ_ENTRY(function)                                                   \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { \
    return klingq::fuzz::function(data, size);                                        \
  }
#else
#define KLINGQ_FUZZ_ENTRY(function)
#endif
