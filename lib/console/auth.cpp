// Console access: tokens, sessions and CSRF; see auth.hpp.
#include "console/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <array>
#include <charconv>
#include <vector>

namespace klingq::console {
namespace {

std::array<unsigned char, SHA256_DIGEST_LENGTH> sha256(std::string_view text) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest.data());
  return digest;
}

std::string hex(const unsigned char* data, std::size_t size) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out += digits[data[i] >> 4];
    out += digits[data[i] & 15];
  }
  return out;
}

std::string hmac_hex(const std::string& key, std::string_view message) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
       message.size(), mac, &length);
  return hex(mac, length);
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    auto end = text.find(separator, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return parts;
}

std::string session_message(Role role, int index, long long expiry) {
  return std::string("klingq-session|") + to_string(role) + "|" + std::to_string(index) + "|" + std::to_string(expiry);
}

}  // namespace

const char* to_string(Role role) {
  switch (role) {
    case Role::operator_: return "operator";
    case Role::viewer: return "viewer";
    case Role::none: break;
  }
  return "none";
}

std::string Identity::who() const {
  if (role == Role::none) return "anonymous";
  return std::string(to_string(role)) + "#" + std::to_string(index);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  auto da = sha256(a);
  auto db = sha256(b);
  return CRYPTO_memcmp(da.data(), db.data(), da.size()) == 0;
}

Access::Access(config::ConsoleTokens tokens) : tokens_(std::move(tokens)) {}

const config::Secret* Access::token_of(Role role, int index) const {
  const auto& list = role == Role::operator_ ? tokens_.operators : tokens_.viewers;
  if (role == Role::none || index < 1 || index > static_cast<int>(list.size())) return nullptr;
  return &list[static_cast<std::size_t>(index - 1)];
}

Identity Access::from_token(std::string_view token) const {
  Identity found;
  if (token.empty()) return found;
  // Every token is compared, so the time taken does not say which list matched.
  for (std::size_t i = 0; i < tokens_.operators.size(); ++i) {
    if (constant_time_equal(tokens_.operators[i].reveal(), token) && found.role == Role::none) {
      found.role = Role::operator_;
      found.index = static_cast<int>(i + 1);
    }
  }
  for (std::size_t i = 0; i < tokens_.viewers.size(); ++i) {
    if (constant_time_equal(tokens_.viewers[i].reveal(), token) && found.role == Role::none) {
      found.role = Role::viewer;
      found.index = static_cast<int>(i + 1);
    }
  }
  return found;
}

Identity Access::from_authorization(std::string_view header) const {
  constexpr std::string_view scheme = "Bearer ";
  if (header.size() <= scheme.size()) return {};
  // The scheme is case-insensitive (RFC 9110 11.1).
  for (std::size_t i = 0; i + 1 < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != std::tolower(static_cast<unsigned char>(scheme[i]))) return {};
  }
  if (header[scheme.size() - 1] != ' ') return {};
  auto token = header.substr(scheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  return from_token(token);
}

std::string Access::session_cookie(const Identity& who, TimePoint now) const {
  const auto* token = token_of(who.role, who.index);
  if (!token) return {};
  const long long expiry = to_epoch_ms(now + session_lifetime) / 1000;
  return std::string(to_string(who.role)) + "." + std::to_string(who.index) + "." + std::to_string(expiry) + "." +
         hmac_hex(token->reveal(), session_message(who.role, who.index, expiry));
}

Identity Access::from_cookie(std::string_view value, TimePoint now) const {
  auto parts = split(value, '.');
  if (parts.size() != 4) return {};
  Role role = parts[0] == "operator" ? Role::operator_ : parts[0] == "viewer" ? Role::viewer : Role::none;
  int index = 0;
  long long expiry = 0;
  auto [p1, e1] = std::from_chars(parts[1].data(), parts[1].data() + parts[1].size(), index);
  auto [p2, e2] = std::from_chars(parts[2].data(), parts[2].data() + parts[2].size(), expiry);
  if (role == Role::none || e1 != std::errc{} || e2 != std::errc{} || p1 != parts[1].data() + parts[1].size() ||
      p2 != parts[2].data() + parts[2].size()) {
    return {};
  }
  const auto* token = token_of(role, index);
  if (!token) return {};
  const auto expected = hmac_hex(token->reveal(), session_message(role, index, expiry));
  if (!constant_time_equal(expected, parts[3])) return {};
  if (expiry * 1000 <= to_epoch_ms(now)) return {};
  Identity identity;
  identity.role = role;
  identity.index = index;
  identity.via_cookie = true;
  identity.cookie = std::string(value);
  return identity;
}

std::string Access::csrf_token(const Identity& session) const {
  const auto* token = token_of(session.role, session.index);
  if (!token || !session.via_cookie) return {};
  return hmac_hex(token->reveal(), "klingq-csrf|" + session.cookie);
}

bool Access::csrf_ok(const Identity& session, std::string_view presented) const {
  auto expected = csrf_token(session);
  return !expected.empty() && !presented.empty() && constant_time_equal(expected, presented);
}

std::optional<std::string> cookie_value(std::string_view header, std::string_view name) {
  for (auto part : split(header, ';')) {
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    auto eq = part.find('=');
    if (eq == std::string_view::npos) continue;
    if (part.substr(0, eq) == name) return std::string(part.substr(eq + 1));
  }
  return std::nullopt;
}

}  // namespace klingq::console
