// What the synchronous client and the Batch API client share about libcurl: global
// initialisation, the base URL check, request headers, the options every handle gets
// (TLS, timeouts, proxy, user agent) and how curl's result codes are classified.
// Included only by the adapter's .cpp files, so curl's header stays out of callers.
#pragma once

#include <curl/curl.h>

#include <string>

#include "provider/openai/openai_provider.h"
#include "provider/openai/wire.h"
#include "util/result.h"

namespace lens::provider::openai {

// Runs curl_global_init once per process. REQUIRES: called before any other thread uses
// libcurl. On failure: internal.
[[nodiscard]] util::Status init_curl();

// `options.base_url` without trailing slashes, after checking it is http:// or https://
// (invalid_argument otherwise, the URL redacted in the message). Registers the API key as
// a secret first, so nothing later can log it, and warns when verify_tls is off.
[[nodiscard]] util::Result<std::string> checked_base_url(const OpenAiOptions& options);

// Authorization (when a key is set), Accept: application/json, an empty Expect (no
// 100-continue round trip), the extra headers, and Content-Type: application/json when
// `json_body`. The caller owns the list (curl_slist_free_all).
[[nodiscard]] curl_slist* make_headers(const OpenAiOptions& options, bool json_body);

// The CA bundle and folder handed to curl; empty: curl's built-in defaults.
struct TrustFiles {
  std::string ca_file;
  std::string ca_dir;
};

// options.ca_cert, else OpenSSL's SSL_CERT_FILE / SSL_CERT_DIR: libcurl itself ignores
// those (Debian builds it with a fixed bundle path), yet users expect them to work as they
// do for openssl and curl(1). On failure: configuration, when the CA file cannot be read
// (checked here, before any request, naming where the setting came from).
[[nodiscard]] util::Result<TrustFiles> trust_files(const OpenAiOptions& options);

// The options every transfer of these clients gets, whatever it sends: user agent, no
// signals, connect and whole-transfer timeouts (request_timeout), HTTP/2 over TLS,
// keep-alive, buffer size, TLS verification and the CAs to trust. Proxies are left to
// curl's environment variables (http_proxy, https_proxy, no_proxy). Headers, URL and
// callbacks are not set.
void apply_transfer_options(CURL* easy, const OpenAiOptions& options, const TrustFiles& trust);

// The TransportError class of a transfer that ended without a complete HTTP answer.
[[nodiscard]] TransportError transport_kind(CURLcode code);

}  // namespace lens::provider::openai
