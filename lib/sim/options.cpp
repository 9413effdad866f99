// klingq-sim's command line: see options.hpp.
#include "sim/options.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

namespace klingq::sim {
namespace {

double parse_double(const std::string& option, const std::string& text) {
  double value = 0;
  auto r = std::from_chars(text.data(), text.data() + text.size(), value);
  if (r.ec != std::errc() || r.ptr != text.data() + text.size()) {
    throw UsageError(option + ": not a number: \"" + text + "\"");
  }
  return value;
}

std::int64_t parse_int(const std::string& option, const std::string& text) {
  std::int64_t value = 0;
  auto r = std::from_chars(text.data(), text.data() + text.size(), value);
  if (r.ec != std::errc() || r.ptr != text.data() + text.size()) {
    throw UsageError(option + ": not an integer: \"" + text + "\"");
  }
  return value;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::string usage_text() {
  return R"(usage: klingq-sim --api-key KEY [options]
  --listen HOST:PORT          address to serve (default 127.0.0.1:8080; port 0 = any free port)
  --version                   print the version and exit
  --api-key KEY               the key clients must send (or --api-key-file FILE, or $KLINGQ_SIM_API_KEY)
  --plan NAME                 free | starter | pro | enterprise (default free)
  --rpm N --parallel N --daily N   override the plan's limits (0 = unlimited)
  --window-seconds S          length of the request window, simulated seconds (default 60)
  --day-starts-at HH:MM       the provider's day begins at this UTC time (simulated; default 00:00)
  --reset-day-header yes|no   send X-RateLimit-Reset-Day (default yes)
  --credits N                 starting balance (default 100000)
  --webhook-secret S          HMAC-SHA256 secret of X-Doitong-Signature
  --time-scale X              simulated seconds per real second (default 1)
  --clock-start ISO8601       simulated instant at start-up (default: now)
  --gen-seconds MIN:MAX       generation time range, simulated seconds (default 30:90)
  --fail-rate R               share of jobs that end failed (refunded)
  --seed N                    seed of every random decision (default 1)
  --fault-500 R --fault-503 R --fault-slow R --slow-ms MS
  --fault-reset-before R --fault-reset-after R --fault-malformed R --fault-429-bare R
  --webhook-drop R --webhook-duplicate R --webhook-delay R --webhook-delay-ms MS --webhook-reorder R
  --output-bytes N            serve each completed job's video (N bytes, deterministic) at
                              GET /outputs/ID.mp4 and point its url there (default 0: urls
                              name https://cdn.doitong.com, nothing served)
  --output-fault-500 R --output-fault-truncate R   faults per video download
  --output-redirects N        each video is reached through N redirects (302, relative Location)
  --log-level LEVEL           debug | info | notice | warning | error (default notice)
Prints "listening on HOST:PORT" once serving. Control: GET /_sim/stats, GET /_sim/jobs,
GET|POST /_sim/config, POST /_sim/reset.
)";
}

Options parse_options(const std::vector<std::string>& args, const char* env_api_key) {
  Options o;
  auto& s = o.settings;
  using Setter = std::function<void(const std::string& option, const std::string& value)>;
  auto rate = [](double& out) {
    return Setter([&out](const std::string& option, const std::string& v) { out = parse_double(option, v); });
  };
  auto milliseconds = [](int& out) {
    return Setter([&out](const std::string& option, const std::string& v) {
      auto n = parse_int(option, v);
      if (n < 0 || n > 3600000) throw UsageError(option + " must be between 0 and 3600000");
      out = static_cast<int>(n);
    });
  };
  auto limit = [](std::optional<std::int64_t>& out) {
    return Setter([&out](const std::string& option, const std::string& v) { out = parse_int(option, v); });
  };
  std::string api_key_file;
  const std::map<std::string, Setter> setters{
      {"--listen", [&](auto&, const std::string& v) { o.listen = v; }},
      {"--api-key", [&](auto&, const std::string& v) { o.api_key = Secret(v); }},
      {"--api-key-file", [&](auto&, const std::string& v) { api_key_file = v; }},
      {"--webhook-secret", [&](auto&, const std::string& v) { o.webhook_secret = Secret(v); }},
      {"--plan",
       [&](const std::string& option, const std::string& v) {
         auto plan = parse_plan(v);
         if (!plan) throw UsageError(option + " must be free, starter, pro or enterprise");
         s.plan = *plan;
       }},
      {"--rpm", limit(s.rpm)},
      {"--parallel", limit(s.parallel)},
      {"--daily", limit(s.daily)},
      {"--window-seconds", rate(s.window_seconds)},
      {"--day-starts-at",
       [&](const std::string& option, const std::string& v) {
         auto digit = [&](std::size_t i) { return v[i] >= '0' && v[i] <= '9'; };
         if (v.size() != 5 || !digit(0) || !digit(1) || v[2] != ':' || !digit(3) || !digit(4)) {
           throw UsageError(option + " must be HH:MM (UTC), got '" + v + "'");
         }
         const int hour = (v[0] - '0') * 10 + (v[1] - '0'), minute = (v[3] - '0') * 10 + (v[4] - '0');
         if (hour > 23 || minute > 59) throw UsageError(option + " must be HH:MM (UTC), got '" + v + "'");
         s.day_start_seconds = hour * 3600 + minute * 60;
       }},
      {"--reset-day-header",
       [&](const std::string& option, const std::string& v) {
         if (v != "yes" && v != "no") throw UsageError(option + " must be yes or no");
         s.reset_day_header = v == "yes";
       }},
      {"--credits", [&](const std::string& option, const std::string& v) { s.credits = parse_int(option, v); }},
      {"--time-scale", rate(o.time_scale)},
      {"--clock-start",
       [&](const std::string& option, const std::string& v) {
         o.clock_start = parse_iso8601(v);
         if (!o.clock_start) throw UsageError(option + " must be like 2026-01-01T23:59:55Z");
       }},
      {"--gen-seconds",
       [&](const std::string& option, const std::string& v) {
         auto colon = v.find(':');
         if (colon == std::string::npos) {
           s.gen_min_seconds = s.gen_max_seconds = parse_double(option, v);
         } else {
           s.gen_min_seconds = parse_double(option, v.substr(0, colon));
           s.gen_max_seconds = parse_double(option, v.substr(colon + 1));
         }
       }},
      {"--fail-rate", rate(s.fail_rate)},
      {"--seed",
       [&](const std::string& option, const std::string& v) {
         s.seed = static_cast<std::uint64_t>(parse_int(option, v));
       }},
      {"--fault-500", rate(s.faults.server_error)},
      {"--fault-503", rate(s.faults.unavailable)},
      {"--fault-slow", rate(s.faults.slow)},
      {"--slow-ms", milliseconds(s.faults.slow_ms)},
      {"--fault-reset-before", rate(s.faults.reset_before)},
      {"--fault-reset-after", rate(s.faults.reset_after)},
      {"--fault-malformed", rate(s.faults.malformed)},
      {"--fault-429-bare", rate(s.faults.bare_429)},
      {"--webhook-drop", rate(s.webhook_faults.drop)},
      {"--webhook-duplicate", rate(s.webhook_faults.duplicate)},
      {"--webhook-delay", rate(s.webhook_faults.delay)},
      {"--webhook-delay-ms", milliseconds(s.webhook_faults.delay_ms)},
      {"--webhook-reorder", rate(s.webhook_faults.reorder)},
      {"--output-bytes", [&](const std::string& option, const std::string& v) { s.outputs.bytes = parse_int(option, v); }},
      {"--output-fault-500", rate(s.outputs.server_error)},
      {"--output-fault-truncate", rate(s.outputs.truncate)},
      {"--output-redirects", [&](const std::string& option, const std::string& v) {
         s.outputs.redirects = static_cast<int>(std::clamp<std::int64_t>(parse_int(option, v), -1, 1000));
       }},
      {"--log-level", [&](auto&, const std::string& v) { o.log_level = v; }},
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string option = args[i];
    if (option == "--help" || option == "-h") {
      o.help = true;
      return o;
    }
    if (option == "--version") {
      o.version = true;
      return o;
    }
    std::string value;
    bool inline_value = false;
    if (auto eq = option.find('='); option.starts_with("--") && eq != std::string::npos) {
      value = option.substr(eq + 1);
      option = option.substr(0, eq);
      inline_value = true;
    }
    auto setter = setters.find(option);
    if (setter == setters.end()) throw UsageError("unknown option " + option + " (see --help)");
    if (!inline_value) {
      if (i + 1 >= args.size()) throw UsageError(option + " needs a value");
      value = args[++i];
    }
    setter->second(option, value);
  }
  if (!api_key_file.empty()) {
    std::ifstream in(api_key_file);
    if (!in) throw UsageError("--api-key-file: cannot read " + api_key_file);
    std::stringstream buffer;
    buffer << in.rdbuf();
    o.api_key = Secret(trimmed(buffer.str()));
  }
  if (o.api_key.empty() && env_api_key) o.api_key = Secret(env_api_key);
  if (o.api_key.empty()) throw UsageError("--api-key (or --api-key-file, or $KLINGQ_SIM_API_KEY) is required");
  if (!(o.time_scale > 0)) throw UsageError("--time-scale must be > 0");
  try {
    s.validate();
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--") + e.what());
  }
  return o;
}

}  // namespace klingq::sim
