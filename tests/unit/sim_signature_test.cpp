// The simulator's own webhook signing (lib/sim/signature.hpp) against published
// vectors, so that it is checked by something other than klingq's verifier.
#include "sim/signature.hpp"

#include <doctest/doctest.h>

#include <string>

using klingq::sim::hmac_sha256_hex;
using klingq::sim::webhook_signature;

TEST_CASE("sim signature: GitHub's published webhook vector") {
  // docs.github.com, "Validating webhook deliveries": the example secret and payload.
  CHECK(hmac_sha256_hex("It's a Secret to Everybody", "Hello, World!") ==
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
  CHECK(webhook_signature("It's a Secret to Everybody", "Hello, World!") ==
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
}

TEST_CASE("sim signature: RFC 4231 test case 2 and the empty key and message") {
  // RFC 4231 section 4.3: key "Jefe", data "what do ya want for nothing?".
  CHECK(hmac_sha256_hex("Jefe", "what do ya want for nothing?") ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // HMAC-SHA256 with an empty key over an empty message (the simulator signs with ""
  // when no --webhook-secret is given), a widely published value.
  CHECK(hmac_sha256_hex("", "") == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
  // A body with a NUL byte is signed whole, not up to the NUL.
  const std::string with_nul("a\0b", 3);
  CHECK(hmac_sha256_hex("k", with_nul) != hmac_sha256_hex("k", "a"));
  CHECK(hmac_sha256_hex("k", with_nul).size() == 64);
}
