#include "config/config.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

using namespace klingq::config;

namespace {
std::string example_yaml() {
  std::ifstream file(std::string(KLINGQ_SOURCE_DIR) + "/config/klingq.example.yaml");
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

std::string error_of(const std::string& yaml) {
  try {
    parse(yaml).validate();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("the example config documents every key and loads to the defaults") {
  auto text = example_yaml();
  REQUIRE(!text.empty());
  for (const auto& key : known_keys()) {
    // Each dotted key's last part must appear as a YAML key in the example.
    auto leaf = key.substr(key.rfind('.') + 1);
    CHECK_MESSAGE(text.find(leaf + ":") != std::string::npos, "undocumented key " << key);
  }
  auto config = parse(text);
  config.validate();
  Config defaults;
  CHECK(config.database.url == defaults.database.url);
  CHECK(config.api.request_timeout_ms == defaults.api.request_timeout_ms);
  CHECK(config.credits.cost.professional_10 == 500);
  CHECK(config.poll.share == doctest::Approx(0.2));
  CHECK(!config.limits.rpm.has_value());
}

TEST_CASE("plan limits start from the API's table and overrides win") {
  auto config = parse("limits:\n  plan: starter\n  parallel: 5\n");
  auto limits = config.starting_limits();
  CHECK(limits.rpm == 30);
  CHECK(limits.parallel == 5);
  CHECK(limits.daily == 1000);
  CHECK(plan_limits(Plan::pro).daily == 10000);
  CHECK(plan_limits(Plan::enterprise).rpm == 0);
}

TEST_CASE("bad config names the key") {
  CHECK(error_of("api:\n  protocol: soap\n").find("'api.protocol'") != std::string::npos);
  CHECK(error_of("limits:\n  plan: gold\n").find("'limits.plan'") != std::string::npos);
  CHECK(error_of("limits:\n  rpm: -1\n").find("'limits.rpm'") != std::string::npos);
  CHECK(error_of("api:\n  timeout: 3\n").find("'api.timeout': unknown key") != std::string::npos);
  CHECK(error_of("dispatch:\n  claim_batch: lots\n").find("'dispatch.claim_batch'") != std::string::npos);
  CHECK(error_of("webhook:\n  listen: 0.0.0.0:8081\n").find("'webhook.secrets'") != std::string::npos);
  CHECK(error_of("poll:\n  share: 1.5\n").find("'poll.share'") != std::string::npos);
  CHECK(error_of("api:\n  base_url: ftp://x\n").find("'api.base_url'") != std::string::npos);
  CHECK(error_of("log:\n  level: loud\n").find("'log.level'") != std::string::npos);
  CHECK(error_of("outputs:\n  download: true\n").find("'outputs.dir'") != std::string::npos);
  CHECK(error_of("[1, 2]").find("mapping") != std::string::npos);
  CHECK(error_of("a: [").find("not valid YAML") != std::string::npos);
  CHECK(error_of("").empty());
}

TEST_CASE("outputs: download keys have defaults and name themselves when bad") {
  Config defaults;
  CHECK_FALSE(defaults.outputs.download);
  CHECK(defaults.outputs.max_bytes == 2147483648);
  CHECK(defaults.outputs.timeout_seconds == 1800);
  CHECK(defaults.outputs.concurrency == 4);
  auto config = parse("outputs:\n  download: true\n  dir: /srv/videos\n  max_bytes: 1048576\n"
                      "  timeout_seconds: 60\n  concurrency: 2\n  max_attempts: 7\n");
  config.validate();
  CHECK(config.outputs.max_bytes == 1048576);
  CHECK(config.outputs.concurrency == 2);
  CHECK(error_of("outputs:\n  max_bytes: 0\n").find("'outputs.max_bytes'") != std::string::npos);
  CHECK(error_of("outputs:\n  max_bytes: big\n").find("'outputs.max_bytes'") != std::string::npos);
  CHECK(error_of("outputs:\n  timeout_seconds: 0\n").find("'outputs.timeout_seconds'") != std::string::npos);
  CHECK(error_of("outputs:\n  concurrency: 0\n").find("'outputs.concurrency'") != std::string::npos);
  CHECK(error_of("outputs:\n  max_attempts: 0\n").find("'outputs.max_attempts'") != std::string::npos);
}

TEST_CASE("secrets and passwords never print") {
  auto config = parse("webhook:\n  listen: 127.0.0.1:0\n  secrets: [s3cr3t-one, s3cr3t-two]\n");
  REQUIRE(config.webhook.secrets.size() == 2);
  CHECK(config.webhook.secrets[1].reveal() == "s3cr3t-two");
  CHECK(redact_url("postgresql://app:hunter2@db:5432/q") == "postgresql://app:<redacted>@db:5432/q");
  CHECK(redact_url("host=db password=hunter2 dbname=q") == "host=db password=<redacted> dbname=q");
  CHECK(redact_url("postgresql:///q?password=hunter2&host=x") ==
        "postgresql:///q?password=<redacted>&host=x");
  CHECK(redact_url("postgresql:///klingq") == "postgresql:///klingq");
}
