// libcurl set-up shared by the synchronous embeddings client and the Batch API client.
#include "provider/openai/curl_setup.h"

#include <fmt/core.h>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "util/log.h"
#include "util/redact.h"

namespace lens::provider::openai {

util::Status init_curl() {
  static std::once_flag once;
  static CURLcode global_rc = CURLE_OK;
  std::call_once(once, [] { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (global_rc != CURLE_OK) return util::fail(util::ErrorCode::internal, "curl_global_init failed");
  return {};
}

util::Result<std::string> checked_base_url(const OpenAiOptions& options) {
  // First, so nothing below can log the key.
  util::register_secret(options.api_key);
  std::string base = options.base_url;
  while (!base.empty() && base.back() == '/')
    base.pop_back();
  CURLU* u = curl_url();
  const CURLUcode rc = curl_url_set(u, CURLUPART_URL, base.c_str(), 0);
  char* scheme = nullptr;
  const bool ok = rc == CURLUE_OK && curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
                  (std::string_view(scheme) == "http" || std::string_view(scheme) == "https");
  curl_free(scheme);
  curl_url_cleanup(u);
  if (!ok) {
    return util::fail(util::ErrorCode::invalid_argument,
                      "base URL must be http:// or https://, got '" + util::redact(base) + "'");
  }
  if (!options.verify_tls) {
    util::log_warn("TLS certificate verification is OFF for {}: anyone on the path can read the API key",
                   util::redact(base));
  }
  return base;
}

curl_slist* make_headers(const OpenAiOptions& options, bool json_body) {
  curl_slist* headers = nullptr;
  auto add = [&](const std::string& h) {
    if (curl_slist* next = curl_slist_append(headers, h.c_str())) headers = next;
  };
  if (!options.api_key.empty()) add("Authorization: Bearer " + options.api_key);
  if (json_body) add("Content-Type: application/json");
  add("Accept: application/json");
  // No "Expect: 100-continue": it costs a round trip per request for large bodies.
  add("Expect:");
  for (const auto& h : options.extra_headers)
    add(h);
  return headers;
}

util::Result<TrustFiles> trust_files(const OpenAiOptions& options) {
  TrustFiles t;
  std::string origin;
  if (!options.ca_cert.empty()) {
    t.ca_file = options.ca_cert;
    origin = "the CA certificate file (--ca-cert, <PROVIDER>_CA_CERT or ca_cert)";
  } else {
    const char* file = std::getenv("SSL_CERT_FILE");
    const char* dir = std::getenv("SSL_CERT_DIR");
    t.ca_file = file ? file : "";
    t.ca_dir = dir ? dir : "";
    origin = "SSL_CERT_FILE";
  }
  if (!t.ca_file.empty()) {
    std::FILE* f = std::fopen(t.ca_file.c_str(), "rb");
    if (!f) {
      return util::fail(util::ErrorCode::configuration,
                        fmt::format("{} '{}' cannot be read: {}", origin, t.ca_file, std::strerror(errno)));
    }
    std::fclose(f);
    util::log_debug("provider: trusting the CAs in {}", t.ca_file);
  }
  return t;
}

void apply_transfer_options(CURL* e, const OpenAiOptions& options, const TrustFiles& trust) {
  curl_easy_setopt(e, CURLOPT_USERAGENT, options.user_agent.c_str());
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout.count()));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(options.request_timeout.count()));
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, options.verify_tls ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, options.verify_tls ? 2L : 0L);
  if (!trust.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, trust.ca_file.c_str());
  if (!trust.ca_dir.empty()) curl_easy_setopt(e, CURLOPT_CAPATH, trust.ca_dir.c_str());
  // Proxies: nothing set, so curl honours http_proxy/https_proxy/no_proxy as usual.
}

TransportError transport_kind(CURLcode code) {
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return TransportError::timeout;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return TransportError::connect;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_WEIRD_SERVER_REPLY:
      return TransportError::reset;
    // The server's certificate: unknown CA, host name mismatch, expired (all reported as
    // CURLE_PEER_FAILED_VERIFICATION by OpenSSL), a pinned key or OCSP status that fails.
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ISSUER_ERROR:
      return TransportError::tls_verify;
    // Our side's files: the CA bundle, a revocation list, a client certificate.
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
      return TransportError::tls_setup;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return TransportError::bad_url;
    default:
      return TransportError::other;
  }
}

}  // namespace lens::provider::openai
