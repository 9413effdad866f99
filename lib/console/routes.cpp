// The console's HTTP side: routing, access rules, input checks, framing; see routes.hpp.
#include "console/routes.hpp"

#include "console/page.hpp"
#include "db/pool.hpp"
#include "util/log.hpp"

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <charconv>
#include <mutex>

namespace klingq::console {
namespace {

namespace bhttp = boost::beast::http;
namespace json = boost::json;

struct State {
  db::Pool& pool;
  std::shared_ptr<const Access> access_now;  // replaced whole on SIGHUP; read under mutex
  Options options;
  http::Handler fallback;
  std::mutex mutex;
  std::string cached_overview;
  std::chrono::steady_clock::time_point cached_at{};
  std::shared_ptr<const SlowFigures> slow;
  std::chrono::steady_clock::time_point slow_at{};
  bool slow_refreshing = false;
  FailureLimiter login_limiter;  // under mutex

  State(db::Pool& pool_in, Access access_in, Options options_in, http::Handler fallback_in)
      : pool(pool_in),
        access_now(std::make_shared<const Access>(std::move(access_in))),
        options(std::move(options_in)),
        fallback(std::move(fallback_in)),
        login_limiter(options.login_limit) {}

  std::shared_ptr<const Access> access() {
    std::lock_guard lock(mutex);
    return access_now;
  }
};

constexpr std::array<const char*, 6> job_states = {"queued", "dispatching", "submitted", "completed", "failed", "cancelled"};

http::Response respond(const http::Request& request, unsigned status, std::string body, std::string_view type) {
  http::Response response{static_cast<bhttp::status>(status), request.version()};
  response.set(bhttp::field::content_type, type);
  response.set(bhttp::field::cache_control, "no-store");
  response.set("X-Content-Type-Options", "nosniff");
  response.set("X-Frame-Options", "DENY");
  response.set("Referrer-Policy", "no-referrer");
  response.set("Content-Security-Policy",
               "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
  response.keep_alive(request.keep_alive());
  response.body() = std::move(body);
  response.prepare_payload();
  return response;
}

http::Response json_response(const http::Request& request, const ApiReply& reply) {
  auto response = respond(request, static_cast<unsigned>(reply.status), reply.body, "application/json");
  if (reply.status == 401) response.set(bhttp::field::www_authenticate, "Bearer realm=\"klingq\"");
  return response;
}

http::Response error(const http::Request& request, int status, const std::string& message) {
  return json_response(request, error_reply(status, message));
}

// The bucket key of the client, from the header the server sets (routes.hpp).
std::string client_key(const http::Request& request) {
  auto peer = request[peer_address_header];
  if (peer.empty()) return "unknown";
  return address_key(std::string_view(peer.data(), peer.size()));
}

// May this client present a token now? nullopt: yes; else the 429 to send.
std::optional<http::Response> token_check_refused(State& s, const http::Request& request, const std::string& client) {
  LimitDecision decision;
  {
    std::lock_guard lock(s.mutex);
    decision = s.login_limiter.check(client, s.options.clock());
  }
  if (decision.allowed) return std::nullopt;
  const auto seconds = std::max<std::int64_t>(1, (decision.retry_after.count() + 999) / 1000);
  auto response = error(request, 429,
                        std::string(decision.scope == LimitScope::overall
                                        ? "too many wrong tokens from all addresses"
                                        : "too many wrong tokens from this address") +
                            "; try again in " + std::to_string(seconds) + " s");
  response.set(bhttp::field::retry_after, std::to_string(seconds));
  return response;
}

// A wrong token from this client: counted, and the start of a burst logged once.
void token_failed(State& s, const std::string& client) {
  FailureRecords records;
  {
    std::lock_guard lock(s.mutex);
    records = s.login_limiter.record_failure(client, s.options.clock());
  }
  const auto window = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(s.options.login_limit.window).count());
  for (const auto* record : {&records.address, &records.overall}) {
    if (!record->burst_started) continue;
    log::warning("console_login_limited",
                 {{"scope", to_string(record->scope)},
                  {"address", record->scope == LimitScope::address ? client : std::string("*")},
                  {"failures", std::to_string(record->failures)},
                  {"window_s", window},
                  {"retry_after_ms", std::to_string(record->retry_after.count())}});
  }
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding ('+' is a space in a query or a form); nullopt when malformed.
std::optional<std::string> decode(std::string_view text, bool plus_is_space) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      int hi = hex_digit(text[i + 1]), lo = hex_digit(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

// "a=1&b=2" -> pairs; nullopt when an item is malformed.
std::optional<std::vector<std::pair<std::string, std::string>>> parse_form(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> items;
  while (!text.empty()) {
    auto amp = text.find('&');
    auto item = text.substr(0, amp);
    text = amp == std::string_view::npos ? std::string_view{} : text.substr(amp + 1);
    if (item.empty()) continue;
    auto eq = item.find('=');
    auto key = decode(item.substr(0, eq), true);
    auto value = decode(eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1), true);
    if (!key || !value) return std::nullopt;
    items.emplace_back(std::move(*key), std::move(*value));
  }
  return items;
}

std::optional<std::int64_t> positive_id(std::string_view text) {
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value <= 0) return std::nullopt;
  return value;
}

// A batch label as klingq.jobs accepts it (jobs_batch_length): 1 to 200 characters.
bool valid_label(const std::string& label, std::string& problem) {
  std::size_t chars = 0;
  for (unsigned char c : label) chars += (c & 0xC0) != 0x80;
  if (chars < 1 || chars > 200) {
    problem = "bad batch label: must be 1 to 200 characters";
    return false;
  }
  for (unsigned char c : label) {
    if (c < 0x20 || c == 0x7f) {
      problem = "bad batch label: control characters are not allowed";
      return false;
    }
  }
  return true;
}

// A path segment naming a batch, percent-decoded and checked.
std::optional<std::string> batch_label(std::string_view encoded, std::string& problem) {
  auto label = decode(encoded, false);
  if (!label) {
    problem = "bad batch label: malformed percent-encoding";
    return std::nullopt;
  }
  if (!valid_label(*label, problem)) return std::nullopt;
  return label;
}

std::vector<std::string_view> segments(std::string_view path) {
  std::vector<std::string_view> out;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash);
  }
  return out;
}

Identity identify(const Access& access, const http::Request& request, bool& bad_token) {
  bad_token = false;
  auto authorization = request[bhttp::field::authorization];
  if (!authorization.empty()) {
    auto who = access.from_authorization(std::string_view(authorization.data(), authorization.size()));
    bad_token = who.role == Role::none;
    return who;
  }
  auto cookies = request[bhttp::field::cookie];
  if (auto value = cookie_value(std::string_view(cookies.data(), cookies.size()), Access::cookie_name)) {
    return access.from_cookie(*value, Clock::now());
  }
  return {};
}

// The JSON object body of an action: empty means {}; keys other than `allowed` are refused.
std::optional<json::object> action_body(const http::Request& request, std::initializer_list<std::string_view> allowed,
                                        std::string& problem) {
  const auto& body = request.body();
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return json::object{};
  auto type = request[bhttp::field::content_type];
  if (type.substr(0, 16) != "application/json") {
    problem = "an action's body must be JSON (Content-Type: application/json)";
    return std::nullopt;
  }
  json::error_code ec;
  auto value = json::parse(body, ec);
  if (ec) {
    problem = "malformed JSON body: " + ec.message();
    return std::nullopt;
  }
  if (!value.is_object()) {
    problem = "the body must be a JSON object";
    return std::nullopt;
  }
  for (const auto& item : value.as_object()) {
    bool known = false;
    for (auto key : allowed) known = known || item.key() == key;
    if (!known) {
      problem = "unknown key in body: \"" + std::string(item.key()) + "\"";
      return std::nullopt;
    }
  }
  return value.as_object();
}

boost::asio::awaitable<http::Response> run_api(std::shared_ptr<State> s, const http::Request& request,
                                               std::function<ApiReply(pqxx::connection&)> work) {
  try {
    auto reply = co_await s->pool.run([work = std::move(work)](pqxx::connection& c) { return work(c); });
    co_return json_response(request, reply);
  } catch (const std::exception& e) {
    log::error("console_database_error", {{"error", e.what()}});
    co_return error(request, 503, "database unavailable; try again");
  }
}

boost::asio::awaitable<http::Response> login(std::shared_ptr<State> s, const http::Request& request) {
  const auto access = s->access();
  std::string token;
  const bool form = request[bhttp::field::content_type].substr(0, 33) == "application/x-www-form-urlencoded";
  if (form) {
    auto items = parse_form(request.body());
    if (!items) co_return error(request, 400, "malformed form body");
    for (auto& [k, v] : *items) if (k == "token") token = v;
  } else {
    std::string problem;
    auto body = action_body(request, {"token"}, problem);
    if (!body) co_return error(request, 400, problem);
    if (body->contains("token") && body->at("token").is_string()) token = std::string(body->at("token").as_string());
  }
  if (token.empty()) co_return error(request, 400, "a token is needed to log in");
  const auto client = client_key(request);
  if (auto refused = token_check_refused(*s, request, client)) co_return std::move(*refused);
  auto who = access->from_token(token);
  if (who.role == Role::none) {
    token_failed(*s, client);
    log::warning("console_login_refused", {{"address", client}});
    co_return error(request, 401, "unknown token");
  }
  auto cookie = access->session_cookie(who, Clock::now());
  auto session = access->from_cookie(cookie, Clock::now());
  log::notice("console_login", {{"who", who.who()}});
  http::Response response = form ? respond(request, 303, "", "text/plain; charset=utf-8")
                                 : respond(request, 200,
                                           json::serialize(json::object{{"role", to_string(who.role)},
                                                                        {"who", who.who()},
                                                                        {"csrf", access->csrf_token(session)}}),
                                           "application/json");
  if (form) response.set(bhttp::field::location, "/");
  response.set(bhttp::field::set_cookie,
               std::string(Access::cookie_name) + "=" + cookie + "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" +
                   std::to_string(std::chrono::seconds(Access::session_lifetime).count()));
  co_return response;
}

boost::asio::awaitable<http::Response> serve(http::Request request, std::shared_ptr<State> s) {
  std::string_view target(request.target().data(), request.target().size());
  auto question = target.find('?');
  std::string_view path = target.substr(0, question);
  std::string_view query = question == std::string_view::npos ? std::string_view{} : target.substr(question + 1);
  const auto method = request.method();
  const bool get = method == bhttp::verb::get || method == bhttp::verb::head;
  const bool post = method == bhttp::verb::post;

  auto not_allowed = [&](const char* allow) {
    auto response = error(request, 405, "method not allowed");
    response.set(bhttp::field::allow, allow);
    return response;
  };

  // The page.
  if (path == "/" || path == "/index.html") {
    if (!get) co_return not_allowed("GET");
    co_return respond(request, 200, page::html, "text/html; charset=utf-8");
  }
  if (path == "/console.js") {
    if (!get) co_return not_allowed("GET");
    co_return respond(request, 200, page::js, "text/javascript; charset=utf-8");
  }
  if (path == "/console.css") {
    if (!get) co_return not_allowed("GET");
    co_return respond(request, 200, page::css, "text/css; charset=utf-8");
  }
  const bool api = path == "/api" || path.substr(0, 5) == "/api/";
  if (!api && path != "/login" && path != "/logout") co_return co_await s->fallback(std::move(request));

  if (request.body().size() > s->options.body_limit) {
    co_return error(request, 413, "body too large: at most " + std::to_string(s->options.body_limit) + " bytes");
  }
  if (path == "/login") {
    if (!post) co_return not_allowed("POST");
    co_return co_await login(s, request);
  }
  if (path == "/logout") {
    if (!post) co_return not_allowed("POST");
    auto response = respond(request, 200, R"({"role":"none"})", "application/json");
    response.set(bhttp::field::set_cookie,
                 std::string(Access::cookie_name) + "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    co_return response;
  }

  bool bad_token = false;
  const auto access = s->access();  // one set of tokens for the whole request
  const bool presents_token = !request[bhttp::field::authorization].empty();
  const auto client = presents_token ? client_key(request) : std::string();
  if (presents_token) {
    if (auto refused = token_check_refused(*s, request, client)) co_return std::move(*refused);
  }
  const Identity who = identify(*access, request, bad_token);
  if (bad_token) token_failed(*s, client);
  auto parts = segments(path);  // "api", ...

  if (parts.size() == 2 && parts[1] == "session") {
    if (!get) co_return not_allowed("GET");
    if (bad_token) co_return error(request, 401, "unknown token");
    json::object body{{"role", to_string(who.role)},
                      {"who", who.who()},
                      {"csrf", who.via_cookie ? json::value(access->csrf_token(who)) : json::value(nullptr)},
                      {"reads_need_token", access->reads_need_token()},
                      {"actions_configured", access->actions_configured()}};
    co_return respond(request, 200, json::serialize(body), "application/json");
  }

  // Which route, before any access decision, so that an unknown path is a 404 for all.
  enum class Route { none, overview, jobs, job, pause, resume, job_action, batch_action } route = Route::none;
  if (parts.size() == 2 && parts[1] == "overview") route = Route::overview;
  else if (parts.size() == 2 && parts[1] == "jobs") route = Route::jobs;
  else if (parts.size() == 3 && parts[1] == "jobs") route = Route::job;
  else if (parts.size() == 2 && parts[1] == "pause") route = Route::pause;
  else if (parts.size() == 2 && parts[1] == "resume") route = Route::resume;
  else if (parts.size() == 4 && parts[1] == "jobs" && (parts[3] == "retry" || parts[3] == "cancel")) route = Route::job_action;
  else if (parts.size() == 4 && parts[1] == "batches" &&
           (parts[3] == "retry-failed" || parts[3] == "cancel" || parts[3] == "budget" || parts[3] == "pause" ||
            parts[3] == "resume"))
    route = Route::batch_action;
  if (route == Route::none) co_return error(request, 404, "no such API route: " + std::string(path));

  const bool is_read = route == Route::overview || route == Route::jobs || route == Route::job;
  if (is_read && !get) co_return not_allowed("GET");
  if (!is_read && !post) co_return not_allowed("POST");
  if (bad_token) co_return error(request, 401, "unknown token");

  if (is_read) {
    if (access->reads_need_token() && who.role == Role::none) {
      co_return error(request, 401, "a viewer or operator token is needed (Authorization: Bearer, or log in)");
    }
    if (route == Route::overview) {
      {
        std::lock_guard lock(s->mutex);
        if (!s->cached_overview.empty() && std::chrono::steady_clock::now() - s->cached_at < s->options.overview_cache) {
          co_return respond(request, 200, s->cached_overview, "application/json");
        }
      }
      auto settings = s->options.settings;
      // The batch counts and the last hour's events are read again only when due: after
      // `slow_figures_cost_factor` times what reading them took, at least
      // slow_figures_min, at most slow_figures_max. Meanwhile the rest is fresh.
      std::shared_ptr<const SlowFigures> slow;
      bool due = false;
      {
        std::lock_guard lock(s->mutex);
        slow = s->slow;
        if (!slow) {
          due = true;
        } else if (!s->slow_refreshing) {
          auto ttl = std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::duration<double>(slow->seconds * s->options.slow_figures_cost_factor));
          ttl = std::clamp(ttl, s->options.slow_figures_min, s->options.slow_figures_max);
          due = std::chrono::steady_clock::now() - s->slow_at >= ttl;
        }
        if (due) s->slow_refreshing = true;
      }
      if (due) {
        try {
          auto fresh = co_await s->pool.run([settings](pqxx::connection& c) { return slow_figures(c, settings); });
          std::lock_guard lock(s->mutex);
          s->slow = slow = std::make_shared<const SlowFigures>(std::move(fresh));
          s->slow_at = std::chrono::steady_clock::now();
          s->slow_refreshing = false;
        } catch (const std::exception& e) {
          {
            std::lock_guard lock(s->mutex);
            s->slow_refreshing = false;
          }
          log::error("console_database_error", {{"error", e.what()}});
          if (!slow) co_return error(request, 503, "database unavailable; try again");
        }
      }
      auto response = co_await run_api(s, request, [settings, slow](pqxx::connection& c) { return overview(c, settings, *slow); });
      if (response.result_int() == 200) {
        std::lock_guard lock(s->mutex);
        s->cached_overview = response.body();
        s->cached_at = std::chrono::steady_clock::now();
      }
      co_return response;
    }
    if (route == Route::job) {
      auto id = positive_id(parts[2]);
      if (!id) co_return error(request, 400, "bad job id \"" + std::string(parts[2]) + "\": expected a positive integer");
      co_return co_await run_api(s, request, [id = *id](pqxx::connection& c) { return job(c, id); });
    }
    // The job list's filters.
    auto items = parse_form(query);
    if (!items) co_return error(request, 400, "malformed query string");
    db::console::JobFilter filter;
    for (auto& [key, value] : *items) {
      if (value.empty()) continue;
      if (key == "state") {
        bool known = false;
        for (auto state : job_states) known = known || value == state;
        if (!known) co_return error(request, 400, "bad state \"" + value + "\": expected queued, dispatching, submitted, completed, failed or cancelled");
        filter.state = value;
      } else if (key == "batch") {
        std::string problem;
        if (!valid_label(value, problem)) co_return error(request, 400, problem);
        filter.batch = value;
      } else if (key == "q") {
        if (value.size() > 500) co_return error(request, 400, "q is too long: at most 500 bytes");
        filter.text = value;
      } else if (key == "after") {
        auto id = positive_id(value);
        if (!id) co_return error(request, 400, "bad after \"" + value + "\": expected a job id");
        filter.before_id = *id;
      } else if (key == "limit") {
        auto n = positive_id(value);
        if (!n || *n > 500) co_return error(request, 400, "bad limit \"" + value + "\": expected 1 to 500");
        filter.limit = *n;
      } else {
        co_return error(request, 400, "unknown query parameter \"" + key + "\"");
      }
    }
    const auto scan_rows = s->options.search_scan_rows;
    co_return co_await run_api(s, request, [filter, scan_rows](pqxx::connection& c) { return jobs(c, filter, scan_rows); });
  }

  // Actions.
  if (who.role == Role::none) co_return error(request, 401, "an operator token is needed (Authorization: Bearer, or log in)");
  if (who.role != Role::operator_) co_return error(request, 403, "a viewer token cannot act; an operator token is needed");
  if (who.via_cookie) {
    auto presented = request["X-CSRF-Token"];
    if (!access->csrf_ok(who, std::string_view(presented.data(), presented.size()))) {
      co_return error(request, 403, "missing or wrong X-CSRF-Token (GET /api/session gives it)");
    }
  }
  Action action;
  std::string problem;
  std::string target_text;
  std::optional<json::object> body;
  if (route == Route::pause || route == Route::resume) {
    action.kind = route == Route::pause ? Action::pause : Action::resume;
    body = action_body(request, {"reason"}, problem);
    target_text = "account";
  } else if (route == Route::job_action) {
    auto id = positive_id(parts[2]);
    if (!id) co_return error(request, 400, "bad job id \"" + std::string(parts[2]) + "\": expected a positive integer");
    action.kind = parts[3] == "retry" ? Action::job_retry : Action::job_cancel;
    action.job_id = *id;
    body = action_body(request, {"reason"}, problem);
    target_text = "job " + std::to_string(*id);
  } else {
    if (parts[2] == unlabelled_segment) {
      // The jobs without a batch (api.hpp): the segment is read before decoding.
      if (parts[3] == "budget") {
        co_return error(request, 400, "the unlabelled batch cannot have a budget: budgets need a batch label");
      }
      action.batch = std::nullopt;
      target_text = "the unlabelled batch";
    } else {
      auto label = batch_label(parts[2], problem);
      if (!label) co_return error(request, 400, problem);
      action.batch = *label;
      target_text = "batch " + *label;
    }
    if (parts[3] == "budget") {
      action.kind = Action::batch_budget;
      body = action_body(request, {"reason", "budget"}, problem);
      if (body) {
        if (!body->contains("budget")) co_return error(request, 400, "\"budget\" is required: credits (0 or more) or null to remove the cap");
        const auto& b = body->at("budget");
        if (b.is_null()) {
          action.budget = std::nullopt;
        } else if (b.is_int64() && b.as_int64() >= 0) {
          action.budget = b.as_int64();
        } else if (b.is_uint64() && b.as_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
          action.budget = static_cast<std::int64_t>(b.as_uint64());
        } else {
          co_return error(request, 400, "\"budget\" must be a whole number of credits, 0 or more, or null");
        }
      }
    } else {
      action.kind = parts[3] == "cancel"   ? Action::batch_cancel
                    : parts[3] == "pause"  ? Action::batch_pause
                    : parts[3] == "resume" ? Action::batch_resume
                                           : Action::batch_retry_failed;
      body = action_body(request, {"reason"}, problem);
    }
  }
  if (!body) co_return error(request, 400, problem);
  if (body->contains("reason")) {
    const auto& r = body->at("reason");
    if (r.is_string()) {
      if (r.as_string().size() > 500) co_return error(request, 400, "\"reason\" is too long: at most 500 bytes");
      if (!r.as_string().empty()) action.reason = std::string(r.as_string());
    } else if (!r.is_null()) {
      co_return error(request, 400, "\"reason\" must be a string");
    }
  }
  const std::string actor = "console:" + who.who();
  auto moved = std::make_shared<std::int64_t>(0);
  auto response = co_await run_api(s, request, [action, actor, moved](pqxx::connection& c) {
    return act(c, action, actor, *moved);
  });
  if (response.result_int() == 200) {
    {
      std::lock_guard lock(s->mutex);
      s->cached_overview.clear();  // the next overview shows the action
      if (!s->slow_refreshing) s->slow.reset();
    }
    log::notice("console_action", {{"who", actor},
                                   {"action", to_string(action.kind)},
                                   {"target", target_text},
                                   {"reason", action.reason.value_or("")},
                                   {"jobs", std::to_string(*moved)}});
  }
  co_return response;
}

}  // namespace

Console make_console(db::Pool& pool, Access access, Options options, http::Handler fallback) {
  auto state = std::make_shared<State>(pool, std::move(access), std::move(options), std::move(fallback));
  Console console;
  console.handler = [state](http::Request request) { return serve(std::move(request), state); };
  console.replace_access = [state](Access fresh) {
    auto replaced = std::make_shared<const Access>(std::move(fresh));
    std::lock_guard lock(state->mutex);
    state->access_now = std::move(replaced);
  };
  return console;
}

http::Handler make_handler(db::Pool& pool, Access access, Options options, http::Handler fallback) {
  return make_console(pool, std::move(access), std::move(options), std::move(fallback)).handler;
}

http::ServerOptions server_options(const Options& options) {
  http::ServerOptions server;
  server.body_limit = options.body_limit;
  server.peer_address_header = peer_address_header;  // the failed-login limit's key
  return server;
}

}  // namespace klingq::console
