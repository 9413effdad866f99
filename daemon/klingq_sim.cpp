// klingq-sim: the generation API simulator (lib/sim) as a program. Parses the command
// line, serves until SIGTERM or SIGINT, and prints "listening on HOST:PORT" once the
// socket is bound so that tests can start it on port 0.
#include "sim/options.hpp"
#include "sim/server.hpp"
#include "util/log.hpp"
#include "util/version.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  using namespace klingq;
  sim::Options options;
  try {
    options = sim::parse_options(std::vector<std::string>(argv + 1, argv + argc), std::getenv("KLINGQ_SIM_API_KEY"));
  } catch (const sim::UsageError& e) {
    std::fprintf(stderr, "klingq-sim: %s\n", e.what());
    return 2;
  }
  if (options.version) {
    std::printf("klingq-sim %s\n", version());
    return 0;
  }
  if (options.help) {
    std::fputs(sim::usage_text().c_str(), stdout);
    return 0;
  }
  log::Level level;
  if (!log::parse_level(options.log_level, level)) {
    std::fprintf(stderr, "klingq-sim: --log-level: unknown level \"%s\"\n", options.log_level.c_str());
    return 2;
  }
  log::set_level(level);

  // One thread: the account model is a single strand of work (exact counters, no locks).
  boost::asio::io_context io(1);
  sim::Simulator simulator(io.get_executor(), options);
  boost::asio::ip::tcp::endpoint bound;
  try {
    bound = simulator.listen(options.listen);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "klingq-sim: %s\n", e.what());
    return 1;
  }
  simulator.start();

  // SIGTERM/SIGINT: stop accepting and let requests and webhooks in flight finish, for
  // at most two seconds; a second signal ends the process at once.
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  boost::asio::steady_timer drain(io);
  auto deadline = std::chrono::steady_clock::now();
  std::function<void()> wait_idle = [&] {
    if (!simulator.busy() || std::chrono::steady_clock::now() >= deadline) {
      io.stop();
      return;
    }
    drain.expires_after(std::chrono::milliseconds(20));
    drain.async_wait([&](const boost::system::error_code&) { wait_idle(); });
  };
  signals.async_wait([&](const boost::system::error_code& error, int signal_number) {
    if (error) return;
    log::notice("sim_stopping", {{"signal", std::to_string(signal_number)}});
    simulator.stop();
    deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    signals.async_wait([&](const boost::system::error_code& again, int) {
      if (!again) io.stop();
    });
    wait_idle();
  });

  auto address = bound.address().is_v6() ? "[" + bound.address().to_string() + "]" : bound.address().to_string();
  std::printf("listening on %s:%u\n", address.c_str(), static_cast<unsigned>(bound.port()));
  std::fflush(stdout);
  log::notice("sim_started",
              {{"address", address + ":" + std::to_string(bound.port())},
               {"plan", sim::to_string(options.settings.plan)},
               {"time_scale", std::to_string(options.time_scale)},
               {"credits", std::to_string(options.settings.credits)}});
  io.run();
  return 0;
}
