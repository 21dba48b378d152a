// OpenAI-compatible embeddings client (supermind, openai, any /embeddings endpoint):
// libcurl multi interface, many requests in flight from one event loop.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "provider/provider.h"

namespace lens::provider {

struct OpenAiOptions {
  std::string base_url;  // e.g. https://api.openai.com/v1 ; POST {base_url}/embeddings
  std::string api_key;   // sent as Authorization: Bearer; never logged
  std::string model;
  // "base64" (little-endian float32, the default: a quarter of the bytes and no float
  // parsing) or "float" for servers without base64. With base64, a 400 that names
  // encoding_format switches this client to "float" for the rest of the run.
  std::string encoding_format = "base64";
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds request_timeout{120'000};  // whole transfer, queueing included
  bool verify_tls = true;                              // false prints a warning once
  // PEM file of the certificate authorities to trust instead of the system's bundle (a
  // private CA, a TLS-inspecting proxy). Empty: $SSL_CERT_FILE when set (and
  // $SSL_CERT_DIR), as OpenSSL's own tools do, else the system's bundle.
  std::string ca_cert;
  int max_connections = 64;  // connection pool (HTTP/1.1 needs one per request in flight)
  std::string user_agent = "lens-embed/0.1";
  // Extra request headers ("Name: value"), e.g. OpenAI-Organization. Never logged.
  std::vector<std::string> extra_headers;
};

// REQUIRES: called before any other thread uses libcurl (it runs curl_global_init once).
// On success a client whose poll() must be called from one thread at a time.
// On failure: invalid_argument (bad URL, bad encoding_format, empty model);
// configuration when the CA file (ca_cert or $SSL_CERT_FILE) cannot be read.
// A certificate that fails verification (unknown CA, wrong host name, expired) is not
// seen here but by each request: a configuration failure naming --ca-cert and
// SSL_CERT_FILE. Other TLS failures (handshake, protocol) are transient, like a reset.
[[nodiscard]] util::Result<std::unique_ptr<Provider>> make_openai_provider(const OpenAiOptions& options);

}  // namespace lens::provider
