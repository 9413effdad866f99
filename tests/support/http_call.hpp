// A blocking HTTP/1.1 exchange over a plain socket for tests that inspect klingq-sim's
// /_sim endpoints or klingqd's /metrics: no Beast, no keep-alive, a deadline.
#pragma once

#include <string>

namespace klingq::testing {

struct HttpReply {
  int status = 0;  // 0 when the exchange failed
  std::string headers;
  std::string body;
};

// address: "127.0.0.1:PORT". method GET or POST; body sent as application/json.
HttpReply http_call(const std::string& address, const std::string& method, const std::string& target,
                    const std::string& body = "", const std::string& extra_headers = "");
// The same from the loopback source address `source` (e.g. "127.0.0.2": all of 127/8
// is loopback), for servers that tell clients apart by address.
HttpReply http_call_from(const std::string& source, const std::string& address, const std::string& method,
                         const std::string& target, const std::string& body = "",
                         const std::string& extra_headers = "");

}  // namespace klingq::testing
