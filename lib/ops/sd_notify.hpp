// The systemd notification protocol (sd_notify(3)) without libsystemd: one datagram of
// "KEY=value" lines to the AF_UNIX socket named by $NOTIFY_SOCKET. Outside systemd the
// variable is unset and every call is a no-op, so klingqd runs unchanged from a shell,
// a container or a test.
//
// How klingqd uses it (Type=notify, NotifyAccess=main in systemd/klingqd.service):
//   ready()              once the schema is checked and the listeners are bound
//   status("...")        whenever the queue or limit summary changes (one short line)
//   watchdog()           from the event loop, every watchdog_interval() / 2
//   reloading()/ready()  around a SIGHUP reload
//   stopping()           when shutdown begins
#pragma once

#include <chrono>
#include <optional>
#include <string_view>
#include <system_error>

namespace klingq::ops::sd {

// True when $NOTIFY_SOCKET is set and non-empty, i.e. a service manager listens.
bool under_systemd();

// Sends `state` (newline-separated assignments, e.g. "READY=1\nSTATUS=draining") as one
// datagram to $NOTIFY_SOCKET: a filesystem path ("/run/systemd/notify") or an abstract
// socket ("@name"). Returns an empty error_code when the datagram was sent or when
// $NOTIFY_SOCKET is unset (nothing to do); otherwise the failure (socket too long,
// unsupported address, ECONNREFUSED, ...). It never throws: a failed notification
// must not take the daemon down, the caller logs it.
std::error_code notify(std::string_view state);

// Same, to an explicit address instead of $NOTIFY_SOCKET (tests, and callers that
// captured the variable before clearing it). An empty address is a no-op.
std::error_code notify_to(std::string_view socket_address, std::string_view state);

// "READY=1": startup finished; systemd considers the unit started.
std::error_code ready();
// "STOPPING=1": shutdown began; systemd waits up to TimeoutStopSec=.
std::error_code stopping();
// "RELOADING=1" with MONOTONIC_USEC: a reload began; send ready() when it is done.
std::error_code reloading();
// "STATUS=<text>": one line shown by `systemctl status`. Newlines in text become
// spaces so that the text cannot inject other assignments.
std::error_code status(std::string_view text);
// "WATCHDOG=1": the event loop is alive.
std::error_code watchdog();

// The watchdog period systemd enforces (WatchdogSec=), from $WATCHDOG_USEC, or nullopt
// when the watchdog is off, the value is malformed or zero, or $WATCHDOG_PID names
// another process (the variable was inherited, not meant for us). Ping at half of it.
std::optional<std::chrono::microseconds> watchdog_interval();

}  // namespace klingq::ops::sd
