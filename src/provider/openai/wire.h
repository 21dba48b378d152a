// The OpenAI embeddings wire format without any I/O: request bodies, response parsing,
// response headers and the one place where failures are classified.
// Kept free of curl and simdjson headers so tests and callers stay light.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "provider/provider.h"
#include "util/result.h"

namespace lens::provider::openai {

// ---- request ----

// Appends `text` as a JSON string literal (quotes included). Any byte sequence gives
// valid JSON: ill-formed UTF-8 is first repaired to U+FFFD (util::repair_utf8), then
// '"', '\\' and every control character below 0x20 are escaped.
void append_json_string(std::string& out, std::string_view text);

// {"model":..,"input":[..],"encoding_format":..,"dimensions":..} into `out` (cleared
// first; its capacity is reused).
void build_request_body(std::string& out, std::string_view model, std::span<const std::string_view> inputs,
                        std::string_view encoding_format, std::optional<int> dimensions);

// ---- response headers ----

struct ResponseHeaders {
  std::optional<std::chrono::milliseconds> retry_after_ms;  // retry-after-ms
  std::optional<std::chrono::milliseconds> retry_after;     // retry-after (seconds or date)
  RateLimitInfo rate;                                       // x-ratelimit-*
  void clear() { *this = ResponseHeaders{}; }
};

// Feeds one raw header line as curl delivers it ("Name: value\r\n"); lines we do not use
// are ignored. Cheap for the common case (first-byte check before any compare).
void parse_header_line(std::string_view line, ResponseHeaders& out);

// OpenAI's reset durations: "1s", "6m0s", "120ms", "1h2m3.5s", "0.5s", or plain seconds.
[[nodiscard]] std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

// "Please try again in 1.5s." / "try again in 20ms" inside an error message.
[[nodiscard]] std::optional<std::chrono::milliseconds> parse_try_again_in(std::string_view message);

// ---- response bodies ----

// What an error body ({"error":{"message","type","param","code"}}) said; empty fields
// when absent or when the body is not that shape.
struct ErrorBody {
  std::string message;
  std::string type;
  std::string param;
  std::string code;
};
[[nodiscard]] ErrorBody parse_error_body(std::string_view body);

// Decodes exactly `out.size()` little-endian float32 values from base64 `text` (padding
// optional) straight into `out`. False when the text is not valid base64 of that length.
// `all_finite`, when given and the decoding succeeded: whether no value is NaN or infinite
// (checked during the decoding, so the caller needs no second pass over the vector).
[[nodiscard]] bool decode_base64_floats(std::string_view text, std::span<float> out,
                                        bool* all_finite = nullptr);

// Parses a 2xx body: matches data[i] by its "index", checks count, indices, dimensions
// and that every value is finite. Accepts base64 strings and float arrays alike (servers
// that ignore encoding_format). One parser per event loop; not thread-safe.
class ResponseParser {
 public:
  ResponseParser();
  ~ResponseParser();
  ResponseParser(const ResponseParser&) = delete;
  ResponseParser& operator=(const ResponseParser&) = delete;

  // `body` may gain capacity (simdjson wants padding after the text); its content is
  // unchanged. On failure: invalid_response with what was wrong.
  [[nodiscard]] util::Result<EmbedSuccess> parse(std::string& body, std::size_t n_inputs,
                                                 std::optional<int> dimensions);
  // The same into `out`, whose vectors' capacity is reused (the Batch API reader decodes
  // every line of a file into one buffer). On failure `out` holds nothing meaningful.
  [[nodiscard]] util::Status parse_into(std::string& body, std::size_t n_inputs,
                                        std::optional<int> dimensions, EmbedSuccess& out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- classification (done once, here) ----

// tls_verify: the server's certificate failed verification (unknown CA, host name
// mismatch, expired, pinned key): the same every time until the user fixes the trust
// setup, so a configuration failure. tls_setup: our own TLS files (CA bundle) are
// unusable, configuration too. A failed handshake for other reasons counts as `reset`.
enum class TransportError { timeout, connect, reset, tls_verify, tls_setup, bad_url, other };

// A request that got no complete HTTP answer.
[[nodiscard]] EmbedFailure classify_transport(TransportError kind, std::string_view detail);

// A non-2xx answer. `snippet` is the start of the body, used in messages after redaction.
[[nodiscard]] EmbedFailure classify_http(int status, const ResponseHeaders& headers, const ErrorBody& error,
                                         std::string_view body, std::string_view model);

// The delay the server asked for: retry-after-ms, then retry-after, then "try again in"
// in the message, then the x-ratelimit-reset-* that is exhausted (or the longer one).
[[nodiscard]] std::optional<std::chrono::milliseconds> advised_delay(const ResponseHeaders& headers,
                                                                     std::string_view message);

// The first `max_bytes` of `body` on one line, secrets redacted: for error messages.
[[nodiscard]] std::string snippet(std::string_view body, std::size_t max_bytes = 300);

}  // namespace lens::provider::openai
