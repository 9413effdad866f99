// Who is asking, for the console: operator and viewer tokens (config::ConsoleTokens),
// shown as "Authorization: Bearer TOKEN" or through a session cookie the login form
// sets, and the CSRF token a cookie-authenticated action must carry. Pure: strings in,
// an identity out; no sockets, no Beast.
//
// Sessions are stateless so that every instance behind a load balancer accepts them:
// the cookie is "ROLE.INDEX.EXPIRY.MAC" with MAC = HMAC-SHA256(the token on line INDEX
// of ROLE's file, "klingq-session|ROLE|INDEX|EXPIRY"). It names which token logged in,
// never the token; removing a token from its file ends its sessions. The CSRF token is
// HMAC-SHA256(that token, "klingq-csrf|" + cookie). Every comparison of a secret is in
// constant time (CRYPTO_memcmp over SHA-256 digests, so lengths leak nothing either).
#pragma once

#include "config/config.hpp"
#include "util/clock.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace klingq::console {

enum class Role { none, viewer, operator_ };
const char* to_string(Role role);

struct Identity {
  Role role = Role::none;
  int index = 0;           // 1-based line among the role's tokens
  bool via_cookie = false;
  std::string cookie;      // the session cookie's value when via_cookie
  // "operator#2": for the record of actions (klingq.operator_events, the log)
  std::string who() const;
};

class Access {
 public:
  explicit Access(config::ConsoleTokens tokens);

  // Reads need a token only when a viewer file is configured.
  bool reads_need_token() const { return tokens_.viewers_configured; }
  bool actions_configured() const { return !tokens_.operators.empty(); }

  // The role of a bearer token (Role::none when it is neither kind).
  Identity from_token(std::string_view token) const;
  // From an "Authorization" header value ("Bearer TOKEN"); none when absent or unknown.
  Identity from_authorization(std::string_view header) const;
  // From a session cookie's value; none when forged, for a removed token or expired.
  Identity from_cookie(std::string_view value, TimePoint now) const;

  // A session for `who` (which must come from from_token) valid until now + lifetime.
  std::string session_cookie(const Identity& who, TimePoint now) const;
  std::string csrf_token(const Identity& cookie_session) const;
  bool csrf_ok(const Identity& cookie_session, std::string_view presented) const;

  static constexpr std::chrono::hours session_lifetime{12};
  static constexpr const char* cookie_name = "klingq_session";

 private:
  const config::Secret* token_of(Role role, int index) const;
  config::ConsoleTokens tokens_;
};

// The value of cookie `name` in a Cookie header, if present.
std::optional<std::string> cookie_value(std::string_view header, std::string_view name);
// Equal, in time that depends on neither content nor length.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace klingq::console
