// The simulator's webhook signing: see signature.hpp. OpenSSL computes the MAC; this
// file only spells it the way the header wants it.
#include "sim/signature.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdexcept>

namespace klingq::sim {

std::string hmac_sha256_hex(std::string_view secret, std::string_view body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_length = 0;
  // Never hand OpenSSL a null pointer: an empty string_view may have data() == nullptr,
  // and how HMAC treats a null key has differed between OpenSSL versions. An empty
  // secret must mean the empty key (the simulator signs with "" without --webhook-secret).
  static const unsigned char empty = 0;
  const void* key = secret.empty() ? static_cast<const void*>(&empty) : secret.data();
  const auto* message = reinterpret_cast<const unsigned char*>(body.data());
  if (HMAC(EVP_sha256(), key, static_cast<int>(secret.size()), body.empty() ? &empty : message,
           body.size(), mac, &mac_length) == nullptr) {
    throw std::runtime_error("HMAC-SHA256 failed");
  }
  static constexpr char hex_digits[] = "0123456789abcdef";
  std::string hex(2 * mac_length, '0');
  for (unsigned int i = 0; i < mac_length; ++i) {
    hex[2 * i] = hex_digits[mac[i] / 16];
    hex[2 * i + 1] = hex_digits[mac[i] % 16];
  }
  return hex;
}

std::string webhook_signature(std::string_view secret, std::string_view body) {
  return "sha256=" + hmac_sha256_hex(secret, body);
}

}  // namespace klingq::sim
