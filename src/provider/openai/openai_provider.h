// OpenAI-compatible embeddings client (supermind, openai, any /embeddings endpoint):
// libcurl multi interface, many requests in flight from one event loop.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "provider/provider.h"

namespace lens::provider {

struct OpenAiOptions {
  std::string base_url;         // e.g. https://api.openai.com/v1 ; POST {base_url}/embeddings
  std::string api_key;          // sent as Authorization: Bearer; never logged
  std::string model;
  std::string encoding_format = "base64";  // or "float" for servers without base64
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds request_timeout{120'000};
  bool verify_tls = true;
  int max_connections = 64;
};

// On failure: invalid_argument (bad URL, bad encoding_format).
[[nodiscard]] util::Result<std::unique_ptr<Provider>> make_openai_provider(const OpenAiOptions& options);

}  // namespace lens::provider
