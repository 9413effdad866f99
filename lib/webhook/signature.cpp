#include "webhook/signature.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>

namespace klingq::webhook {
namespace {
constexpr std::string_view prefix = "sha256=";

std::array<unsigned char, 32> digest(std::string_view secret, std::string_view body) {
  std::array<unsigned char, 32> out{};
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), out.data(), &length);
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string hmac_sha256_hex(std::string_view secret, std::string_view body) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char byte : digest(secret, body)) {
    hex += digits[byte >> 4];
    hex += digits[byte & 0xf];
  }
  return hex;
}

std::string sign(std::string_view secret, std::string_view body) {
  return std::string(prefix) + hmac_sha256_hex(secret, body);
}

bool verify(std::string_view header, std::string_view body,
            const std::vector<config::Secret>& secrets) {
  if (!header.starts_with(prefix)) return false;
  auto hex = header.substr(prefix.size());
  if (hex.size() != 64) return false;
  std::array<unsigned char, 32> claimed{};
  for (std::size_t i = 0; i < 32; ++i) {
    int high = hex_value(hex[2 * i]);
    int low = hex_value(hex[2 * i + 1]);
    if (high < 0 || low < 0) return false;
    claimed[i] = static_cast<unsigned char>(high << 4 | low);
  }
  bool any = false;
  for (const auto& secret : secrets) {
    if (secret.empty()) continue;
    auto expected = digest(secret.reveal(), body);
    // Check every secret, so timing does not tell which one matched.
    any |= CRYPTO_memcmp(expected.data(), claimed.data(), claimed.size()) == 0;
  }
  return any;
}

}  // namespace klingq::webhook
