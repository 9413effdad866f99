// The operator console on http.listen: the page at / (page.hpp), the session routes and
// the JSON API under /api (api.hpp), behind the access rules (auth.hpp). Everything else
// goes to `fallback` (the ops endpoint: /metrics, /healthz, /readyz). The only
// translation unit of lib/console that includes Beast is routes.cpp.
//
//   GET  /, /console.js, /console.css   the page (no token needed to load it)
//   POST /login   {"token"} or a form field token=: sets the session cookie
//   POST /logout  clears it
//   GET  /api/session   {"role", "who", "csrf", "reads_need_token"}: what the page may do
//   GET  /api/overview, /api/jobs?state=&batch=&q=&after=&limit=, /api/jobs/{id}
//        (q= searches a bounded range of ids per request; see api.hpp's jobs())
//   POST /api/pause {"reason"}, /api/resume, /api/jobs/{id}/retry, /api/jobs/{id}/cancel,
//        /api/batches/{batch}/retry-failed, /api/batches/{batch}/cancel,
//        /api/batches/{batch}/budget {"budget": N | null}, /api/batches/{batch}/pause,
//        /api/batches/{batch}/resume (klingq.batches, as `klingq batch pause|resume`)
//        (every action body may carry "reason"; unknown keys are refused)
//        {batch} is the label percent-encoded, or ":unlabelled" for the jobs without a
//        batch (api.hpp's unlabelled_segment: matched before decoding, so the label
//        ":unlabelled" is "%3Aunlabelled"; while such a label exists the raw segment is a
//        409). The unlabelled batch has no budget: its budget route is a 400.
//
// Guessing: a wrong token (at /login or as a bearer header) counts against the client's
// address and against all addresses (failure_limit.hpp); once either has no room, every
// token check it governs is a 429 with Retry-After and {"error"}, until it drains.
// Cookie sessions are not checked against it. The address is the TCP peer's
// (server_options() has the server put it in peer_address_header).
//
// Access: an action needs an operator: no token 401, a viewer 403, a cookie session
// without the X-CSRF-Token header of /api/session 403. Reads need a viewer or operator
// token only when console.viewer_token_file is set (401 without). A wrong token is 401.
// Bad input is a 4xx with {"error": "..."} and changes nothing.
#pragma once

#include "console/api.hpp"
#include "console/auth.hpp"
#include "console/failure_limit.hpp"
#include "http/server.hpp"

#include <chrono>
#include <functional>
#include <memory>

namespace klingq::db {
class Pool;
}

namespace klingq::console {

struct Options {
  Settings settings;
  std::size_t body_limit = 16 * 1024;              // action and login bodies
  std::chrono::milliseconds overview_cache{1000};  // one overview per instance per second
  // The batch counts and the last hour's events (api.hpp's SlowFigures) read the summary
  // tables of schema 015 (a few ms at 1 M jobs over 1,000 batches): read again after this
  // many times what they took, within [min, max]. 10: at most about a tenth of one
  // database core per instance for them, should the summaries ever grow slow.
  double slow_figures_cost_factor = 10;
  std::chrono::milliseconds slow_figures_min{1000};
  std::chrono::milliseconds slow_figures_max{60000};
  // A prompt search (GET /api/jobs?q=) reads at most this many job ids per request
  // (console.search_scan_rows; bench/README.md, "The console").
  std::int64_t search_scan_rows = 100000;
  // Wrong tokens allowed per address and overall (console.login_failures_*).
  FailureLimitSettings login_limit;
  // The limiter's clock (tests may drive it).
  std::function<TimePoint()> clock = [] { return Clock::now(); };
};

// The request header the server fills with the TCP peer's address (server_options()).
inline constexpr const char* peer_address_header = "X-Klingq-Peer-Address";

// `pool` outlives the handler; `fallback` answers every path the console does not own.
struct Console {
  http::Handler handler;
  // New tokens (SIGHUP): later requests use them; a removed token's sessions end.
  std::function<void(Access)> replace_access;
};
Console make_console(db::Pool& pool, Access access, Options options, http::Handler fallback);
http::Handler make_handler(db::Pool& pool, Access access, Options options, http::Handler fallback);

// Server options for http.listen with the console on it (its body limit).
http::ServerOptions server_options(const Options& options);

}  // namespace klingq::console
