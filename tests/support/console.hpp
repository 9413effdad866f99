// What the console's HTTP tests share: a bearer header, a reply's JSON body and its
// error text, and a file in the stack's directory (token files).
#pragma once

#include "support/http_call.hpp"
#include "support/stack.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>

#include <fstream>
#include <string>

namespace klingq::testing {

inline std::string bearer(const std::string& token) { return "Authorization: Bearer " + token + "\r\n"; }

// The reply's body as JSON (the test fails, showing it, when it is not JSON).
inline boost::json::value body(const HttpReply& r) {
  try {
    return boost::json::parse(r.body);
  } catch (...) {
    FAIL("not JSON: " << r.status << " " << r.body);
  }
  return nullptr;
}

// The "error" of a JSON error reply.
inline std::string error_of(const HttpReply& r) {
  auto v = body(r);
  REQUIRE(v.is_object());
  REQUIRE(v.as_object().contains("error"));
  return std::string(v.at("error").as_string());
}

inline std::string write_file(const Stack& stack, const std::string& name, const std::string& text) {
  auto path = stack.dir + "/" + name;
  std::ofstream(path) << text;
  return path;
}

}  // namespace klingq::testing
