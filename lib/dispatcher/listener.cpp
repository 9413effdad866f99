// Listener: one LISTEN connection per round, rebuilt with backoff when it breaks.
#include "dispatcher/listener.hpp"

#include "util/log.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <pqxx/pqxx>

#include <unistd.h>

namespace klingq::dispatcher {
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

struct Receiver : pqxx::notification_receiver {
  Receiver(pqxx::connection& c, Context& context) : pqxx::notification_receiver(c, "klingq_jobs"), ctx(context) {}
  void operator()(const std::string& payload, int) override {
    ctx.claim_wanted.notify();
    // "slot": some instance recorded a completion, maybe a video due for download.
    if (payload == "slot") ctx.downloads_wanted.notify();
  }
  Context& ctx;
};

}  // namespace

Listener::Listener(Context& context)
    : ctx_(context),
      wakeup_(context.executor, context.stop),
      on_stop_(context.stop.subscribe([this] {
        if (socket_) socket_->cancel();
      })) {}

Listener::~Listener() = default;

asio::awaitable<void> Listener::run() {
  co_await run_loop(wakeup_, [this] { return !ctx_.stop.requested(); }, [this] { return run_once(); });
}

asio::awaitable<SteadyDuration> Listener::run_once() {
  try {
    auto url = ctx_.options.database_url;
    auto connection = co_await ctx_.pool.run([url](pqxx::connection&) {
      return std::make_shared<pqxx::connection>(url);
    });
    Receiver receiver(*connection, ctx_);
    connection->get_notifs();
    socket_ = std::make_unique<asio::posix::stream_descriptor>(ctx_.executor, ::dup(connection->sock()));
    if (failures_ > 0) log::notice("listen_restored");
    failures_ = 0;
    ctx_.claim_wanted.notify();  // anything inserted while we were not listening
    while (!ctx_.stop.requested()) {
      boost::system::error_code ec;
      co_await socket_->async_wait(asio::posix::stream_descriptor::wait_read,
                                   asio::redirect_error(asio::use_awaitable, ec));
      if (ec || ctx_.stop.requested()) break;
      connection->get_notifs();  // throws broken_connection when the server went away
    }
    socket_.reset();
  } catch (const std::exception& e) {
    socket_.reset();
    if (failures_ == 0) log::warning("listen_lost", {{"error", e.what()}});
    ++failures_;
  }
  if (failures_ == 0) co_return SteadyDuration::zero();
  co_return backoff(failures_, 200ms, 5s);
}

}  // namespace klingq::dispatcher
