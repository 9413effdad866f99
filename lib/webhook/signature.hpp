// Webhook signatures: X-Doitong-Signature = "sha256=" + lowercase hex of
// HMAC-SHA256(secret, raw body). Pure functions; the receiver and the simulator share them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace klingq::webhook {

// Lowercase hex HMAC-SHA256 of body under secret.
std::string hmac_sha256_hex(std::string_view secret, std::string_view body);

// The header value a sender puts on body.
std::string sign(std::string_view secret, std::string_view body);

// True when header is "sha256=<64 hex>" matching body under any of the secrets. The
// comparison is constant-time in the digest; hex case is accepted either way.
bool verify(std::string_view header, std::string_view body,
            const std::vector<config::Secret>& secrets);

}  // namespace klingq::webhook
