// klingq-sim's I/O: the sans-io Api (api.hpp) behind a klingq::http::Server, a timer
// that finishes jobs on time, and the webhook deliveries (signed, with the configured
// drop/duplicate/delay/reorder faults, retried a few times with backoff). Everything
// runs on one executor, so the Api needs no lock: the simulator is one strand of
// work, which is what makes its counters exact.
#pragma once

#include "sim/options.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <memory>
#include <string>

namespace klingq::sim {

class Simulator {
 public:
  Simulator(boost::asio::any_io_executor executor, const Options& options);
  ~Simulator();
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  // Binds host:port (port 0 picks one) and returns the bound endpoint.
  boost::asio::ip::tcp::endpoint listen(const std::string& host_port);
  // Starts serving and the job timer. Call after listen(), on any thread.
  void start();
  // Stops accepting, the job timer and webhook retries; requests in flight finish.
  void stop();
  // True while connections are open or webhooks are being delivered (shutdown waits).
  bool busy() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace klingq::sim
