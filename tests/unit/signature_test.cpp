#include "webhook/signature.hpp"

#include <doctest/doctest.h>

using klingq::config::Secret;
using namespace klingq::webhook;

TEST_CASE("HMAC-SHA256 matches published vectors") {
  // GitHub's webhook documentation vector.
  CHECK(hmac_sha256_hex("It's a Secret to Everybody", "Hello, World!") ==
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
  // RFC 4231 test case 2.
  CHECK(hmac_sha256_hex("Jefe", "what do ya want for nothing?") ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("signature verification accepts only the exact header") {
  std::vector<Secret> secrets{Secret("It's a Secret to Everybody")};
  const std::string body = "Hello, World!";
  const std::string good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
  CHECK(verify(good, body, secrets));
  CHECK(sign("It's a Secret to Everybody", body) == good);
  SUBCASE("upper-case hex is the same digest") {
    std::string upper = "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17";
    CHECK(verify(upper, body, secrets));
  }
  SUBCASE("wrong prefix") { CHECK(!verify("sha1=" + good.substr(7), body, secrets)); }
  SUBCASE("no prefix") { CHECK(!verify(good.substr(7), body, secrets)); }
  SUBCASE("truncated") { CHECK(!verify(good.substr(0, good.size() - 2), body, secrets)); }
  SUBCASE("one byte of body changed") { CHECK(!verify(good, "Hello, World?", secrets)); }
  SUBCASE("not hex") { CHECK(!verify("sha256=" + std::string(64, 'z'), body, secrets)); }
  SUBCASE("empty header") { CHECK(!verify("", body, secrets)); }
  SUBCASE("empty body signs too") {
    CHECK(verify(sign("k", ""), "", {Secret("k")}));
    CHECK(!verify(sign("k", ""), "x", {Secret("k")}));
  }
  SUBCASE("rotation: any configured secret verifies") {
    std::vector<Secret> rotated{Secret("new-secret"), Secret("It's a Secret to Everybody")};
    CHECK(verify(good, body, rotated));
    CHECK(!verify(good, body, {Secret("new-secret")}));
  }
  SUBCASE("no secrets: nothing verifies") { CHECK(!verify(good, body, {})); }
}
