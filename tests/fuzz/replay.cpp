// klingq_fuzz_replay: the CI smoke of the fuzz targets, built in every build without
// libFuzzer. It runs a target over each file of its corpus, then over deterministic
// pseudo-random mutations of them (seeded, so a failure reproduces), until a count or a
// time budget is reached. A crash, a sanitizer report (in build-asan) or a broken
// property aborts the process and fails the ctest test.
//
//   klingq_fuzz_replay TARGET PATH... [--mutations N] [--seconds S] [--seed N]
//
// PATH is a corpus directory or one input file (e.g. a crash file saved by libFuzzer).
#include "fuzz_target.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace {
namespace fs = std::filesystem;
using klingq::fuzz::Target;

struct NamedTarget {
  const char* name;
  Target run;
};
constexpr NamedTarget targets[] = {
    {"headers", klingq::fuzz::fuzz_headers},
    {"webhook", klingq::fuzz::fuzz_webhook},
    {"api_response", klingq::fuzz::fuzz_api_response},
    {"config", klingq::fuzz::fuzz_config},
    {"loader_csv", klingq::fuzz::fuzz_loader_csv},
    {"loader_jsonl", klingq::fuzz::fuzz_loader_jsonl},
};

// xorshift64*: small, fast and the same on every platform, so a seed names one run.
struct Random {
  std::uint64_t state;
  std::uint64_t next() {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1DULL;
  }
  std::size_t below(std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(next() % n); }
};

// Bytes and words that parsers of these formats treat specially.
const std::vector<std::string> tokens = {
    "\"", ",", "\n", "\r\n", "\r", ":", "{", "}", "[", "]", "\\", "\\u0000", "\\ud800",
    "null", "true", "-1", "0", "1e999", "-0.0", "9223372036854775807", "18446744073709551616",
    "1e300", "NaN", "GMT", "sha256=", "\xEF\xBB\xBF", "\xF0\x9F\x90\xB1", "\xC0\x80", "\xFF",
    std::string(1, '\0'), "prompt", "duration", "options", "run_after", "errors", "data",
    "extensions", "code", "id", "status", "completed", "failed", "&", "*", "- ", "? ", "\t"};

std::string mutate(const std::vector<std::string>& corpus, Random& random) {
  std::string out = corpus[random.below(corpus.size())];
  const std::size_t edits = 1 + random.below(4);
  for (std::size_t e = 0; e < edits; ++e) {
    const std::size_t at = random.below(out.size() + 1);
    switch (random.below(8)) {
      case 0:  // flip a bit
        if (!out.empty()) out[random.below(out.size())] ^= static_cast<char>(1 << random.below(8));
        break;
      case 1:  // any byte
        if (!out.empty()) out[random.below(out.size())] = static_cast<char>(random.next());
        break;
      case 2:  // insert a byte
        out.insert(out.begin() + static_cast<std::ptrdiff_t>(at), static_cast<char>(random.next()));
        break;
      case 3:  // delete a range
        out.erase(at, 1 + random.below(16));
        break;
      case 4: {  // repeat a range
        const std::size_t length = std::min<std::size_t>(out.size() - std::min(at, out.size()),
                                                         1 + random.below(32));
        const std::string piece = out.substr(at, length);
        for (std::size_t k = 1 + random.below(8); k > 0; --k) out.insert(at, piece);
        break;
      }
      case 5:  // insert a token
      case 6:
        out.insert(at, tokens[random.below(tokens.size())]);
        break;
      case 7: {  // splice: our head, another input's tail
        const std::string& other = corpus[random.below(corpus.size())];
        out = out.substr(0, at) + other.substr(random.below(other.size() + 1));
        break;
      }
    }
    if (out.size() > 65536) out.resize(65536);
  }
  return out;
}

// The input being run, written out by a fatal signal (a broken property aborts, so does an
// escaping exception) so that the failure can be replayed alone: PATH = that file.
std::string crash_file;
const std::string* current_input = nullptr;

extern "C" void save_current_input(int signal_number) {
  if (current_input) {
    int fd = ::open(crash_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      (void)!::write(fd, current_input->data(), current_input->size());
      ::close(fd);
    }
    static const char note[] = "klingq_fuzz_replay: failing input saved to ";
    (void)!::write(2, note, sizeof note - 1);
    (void)!::write(2, crash_file.data(), crash_file.size());
    (void)!::write(2, "\n", 1);
  }
  std::signal(signal_number, SIG_DFL);
  std::raise(signal_number);
}

void run(const NamedTarget& target, const std::string& input) {
  current_input = &input;
  target.run(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
  current_input = nullptr;
}

bool read_file(const fs::path& path, std::string& out) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return false;
  out.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  return true;
}

int usage() {
  std::cerr << "usage: klingq_fuzz_replay TARGET PATH... [--mutations N] [--seconds S] [--seed N]\n"
               "targets:";
  for (const auto& target : targets) std::cerr << ' ' << target.name;
  std::cerr << '\n';
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  const NamedTarget* target = nullptr;
  for (const auto& candidate : targets) {
    if (std::strcmp(candidate.name, argv[1]) == 0) target = &candidate;
  }
  if (!target) return usage();

  std::size_t mutations = 0;
  double seconds = 2.0;
  std::uint64_t seed = 0x6b6c696e67710001ULL;  // "klingq", 1
  std::vector<fs::path> paths;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--mutations" && i + 1 < argc) mutations = std::stoull(argv[++i]);
    else if (arg == "--seconds" && i + 1 < argc) seconds = std::stod(argv[++i]);
    else if (arg == "--seed" && i + 1 < argc) seed = std::stoull(argv[++i]);
    else if (arg.starts_with("--")) return usage();
    else paths.emplace_back(arg);
  }

  // Sorted, so that the mutation sequence of a seed does not depend on directory order.
  std::vector<fs::path> files;
  for (const auto& path : paths) {
    if (fs::is_directory(path)) {
      for (const auto& entry : fs::directory_iterator(path)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
    } else {
      files.push_back(path);
    }
  }
  std::sort(files.begin(), files.end());
  crash_file = (fs::current_path() / ("fuzz-replay-crash-" + std::string(target->name))).string();
  for (int signal_number : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) {
    std::signal(signal_number, save_current_input);
  }
  std::vector<std::string> corpus;
  for (const auto& file : files) {
    std::string bytes;
    if (!read_file(file, bytes)) {
      std::cerr << "cannot read " << file << '\n';
      return 1;
    }
    // Report which file runs, so a crash names it.
    std::cerr << "replay " << file.filename().string() << '\n';
    run(*target, bytes);
    corpus.push_back(std::move(bytes));
  }
  if (corpus.empty()) {
    std::cerr << "no inputs for " << target->name << '\n';
    return 1;
  }

  // Mix the target's name into the seed so the targets do not mutate in lockstep.
  Random random{seed};
  for (const char* c = target->name; *c; ++c) random.state = (random.state ^ *c) * 0x100000001B3ULL;
  if (random.state == 0) random.state = 1;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::size_t done = 0;
  for (; done < mutations && std::chrono::steady_clock::now() < deadline; ++done) {
    const std::string input = mutate(corpus, random);
    run(*target, input);
  }
  std::cout << target->name << ": " << corpus.size() << " corpus inputs, " << done
            << " mutations (seed " << seed << ")\n";
  return 0;
}
