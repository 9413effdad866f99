// A terminal status of one remote job, from a signed webhook or a status poll: the
// provider's words, before anything is written. Kept apart from protocol.hpp so that the
// webhook verifier (pure) can name it without pulling in the HTTP client.
#pragma once

#include <string>

namespace klingq::api {

struct Completion {
  std::string remote_id;           // the provider's job id
  std::string status;              // completed | failed
  std::string url;                 // the video, when completed
  std::string metadata_json = "{}";
  std::string error;               // the provider's message, when failed
  bool by_poll = false;            // a status poll found it (else a webhook said it)
};

}  // namespace klingq::api
