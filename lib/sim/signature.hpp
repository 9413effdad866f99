// How the simulated provider signs a webhook: X-Doitong-Signature is "sha256=" and the
// lowercase hex HMAC-SHA256 of the raw body under the shared secret (API.md's ASSUMED
// convention, GitHub's). The simulator's own implementation, written apart from
// klingq's webhook verifier so that a test of one against the other can fail.
// Pure: no I/O, no state.
#pragma once

#include <string>
#include <string_view>

namespace klingq::sim {

// The 64 lowercase hex digits of HMAC-SHA256(key = secret, message = body). Throws
// std::runtime_error only if OpenSSL itself fails (no SHA-256 available).
std::string hmac_sha256_hex(std::string_view secret, std::string_view body);

// The X-Doitong-Signature value the provider sends with body: "sha256=<hex>".
std::string webhook_signature(std::string_view secret, std::string_view body);

}  // namespace klingq::sim
