// klingqd's YAML configuration: whatever the text, parse() and validate() either give a
// Config or throw ConfigError naming the problem. Any other exception escapes to the
// fuzzer as a crash, because klingqd reports only ConfigError as a bad config.
#include "fuzz_target.hpp"

#include "config/config.hpp"

#include <string>

namespace klingq::fuzz {

int fuzz_config(const std::uint8_t* data, std::size_t size) {
  try {
    auto config = config::parse(std::string(as_text(data, size)));
    (void)config::redact_url(config.database.url);
    config.validate();
    auto limits = config.starting_limits();
    require(limits.rpm >= 0 && limits.parallel >= 0 && limits.daily >= 0,
            "validated limits are not negative");
  } catch (const config::ConfigError&) {
  }
  return 0;
}

}  // namespace klingq::fuzz

KLINGQ_FUZZ_ENTRY(fuzz_config)
