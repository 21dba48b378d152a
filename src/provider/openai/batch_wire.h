// The OpenAI Batch and Files API objects (batch, file, their lists) and their JSON,
// without any I/O: parsing answers, building the create-batch body, and classifying a
// refused call. A public header of lens_provider_openai: free of curl and simdjson, and
// of the private wire.h.
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "provider/provider.h"
#include "util/result.h"

namespace lens::provider::openai {

struct ResponseHeaders;  // wire.h

// What every Batch API call returns: a value, or a failure classified once, here (the
// same EmbedFailure the synchronous client returns: code, HTTP status, advised delay;
// context_length is never set by these calls).
template <typename T>
using BatchResult = std::expected<T, EmbedFailure>;
using BatchStatusResult = std::expected<void, EmbedFailure>;

// The request limits of one input file (OpenAI's Batch guide).
inline constexpr std::size_t k_batch_max_requests = 50'000;
inline constexpr std::size_t k_batch_max_inputs = 50'000;  // embedding inputs over all requests
inline constexpr std::uint64_t k_batch_max_file_bytes = 200ull << 20;
inline constexpr std::string_view k_batch_endpoint = "/v1/embeddings";
inline constexpr std::string_view k_batch_completion_window = "24h";

// ---- files ----

struct FileObject {
  std::string id;
  std::string filename;
  std::string purpose;  // "batch" (our uploads), "batch_output" (output and error files)
  std::int64_t bytes = 0;
  std::int64_t created_at = 0;  // unix seconds
  std::string status;           // "uploaded", "processed", "error" (deprecated by OpenAI; may be "")
};

struct FilePage {
  std::vector<FileObject> data;
  bool has_more = false;  // absent in the answer: false
  std::string last_id;    // the cursor for the next page (`after`); "" when the page is empty
};

// ---- batches ----

enum class BatchStatus {
  validating,
  failed,  // the input file was rejected, or the enqueued-token limit was reached
  in_progress,
  finalizing,
  completed,
  expired,
  cancelling,
  cancelled,
  unknown,  // a status this client does not know; treated as still running
};
[[nodiscard]] std::string_view to_string(BatchStatus status);
[[nodiscard]] BatchStatus parse_batch_status(std::string_view text);
// failed, completed, expired, cancelled: nothing about the batch will change any more.
[[nodiscard]] bool is_terminal(BatchStatus status);

struct BatchErrorEntry {  // errors.data[i]
  std::string code;       // e.g. "token_limit_exceeded", "invalid_request", "duplicate_custom_id"
  std::string message;
  std::string param;
  std::optional<std::int64_t> line;  // 1-based line of the input file, when about one line
};

struct RequestCounts {
  std::int64_t total = 0;
  std::int64_t completed = 0;
  std::int64_t failed = 0;
};

struct BatchObject {
  std::string id;
  std::string input_file_id;
  std::string endpoint;
  std::string completion_window;
  BatchStatus status = BatchStatus::unknown;
  std::string status_text;     // as sent (useful when unknown)
  std::string output_file_id;  // "" while there is none (null)
  std::string error_file_id;   // "" while there is none (null)
  std::vector<BatchErrorEntry> errors;
  RequestCounts request_counts;
  std::int64_t created_at = 0;  // unix seconds; the ones below are absent while null
  std::optional<std::int64_t> in_progress_at, expires_at, finalizing_at, completed_at, failed_at, expired_at,
      cancelling_at, cancelled_at;
  std::vector<std::pair<std::string, std::string>> metadata;  // in the answer's order

  // The value of metadata key `key`, or nullptr.
  [[nodiscard]] const std::string* metadata_value(std::string_view key) const;
  // failed because the organisation's enqueued-token limit for the model was reached
  // (errors.data[].code "token_limit_exceeded"): nothing was wrong with the file, so it
  // is transient: submit again once some in-progress batches have finished.
  [[nodiscard]] bool token_limit_exceeded() const;
  // The failure a `failed` batch stands for: transient for token_limit_exceeded,
  // permanent otherwise (the file was rejected; the message quotes the first errors,
  // redacted). Meaningless for other statuses.
  [[nodiscard]] util::Error failure() const;
};

struct BatchPage {
  std::vector<BatchObject> data;  // newest first
  bool has_more = false;
  std::string last_id;  // the cursor for the next page (`after`); "" when the page is empty
};

// ---- JSON ----
// Each parser takes the body of a 2xx answer. On failure: invalid_response saying what
// was missing or malformed (a snippet of the body, redacted).
[[nodiscard]] util::Result<FileObject> parse_file_object(std::string_view json);
[[nodiscard]] util::Result<FilePage> parse_file_page(std::string_view json);
[[nodiscard]] util::Result<BatchObject> parse_batch_object(std::string_view json);
[[nodiscard]] util::Result<BatchPage> parse_batch_page(std::string_view json);
// {"id":..,"deleted":true}: whether the file is gone.
[[nodiscard]] util::Result<bool> parse_deleted(std::string_view json);

// {"input_file_id":..,"endpoint":"/v1/embeddings","completion_window":"24h","metadata":{..}}
// into `out` (cleared first). Metadata is sent only when not empty.
void build_create_batch_body(std::string& out, std::string_view input_file_id,
                             const std::vector<std::pair<std::string, std::string>>& metadata);

// ---- classification ----

// Which kind of call was refused: the same status means different things on each.
enum class BatchCall {
  batches,      // POST /batches, GET /batches (the collection)
  batch,        // GET /batches/{id}, POST /batches/{id}/cancel
  files,        // POST /files, GET /files (the collection)
  file,         // GET /files/{id}, DELETE /files/{id}
  file_content  // GET /files/{id}/content
};

// A non-2xx answer to a Batch or Files API call, classified:
//   404 on the collections (batches, files): configuration, "the provider has no Batch
//       API ... run without --batch-api" (a server without /v1/batches answers so);
//   404 on one batch or file (or its content): not_found (deleted, expired, another
//       organisation's);
//   401/403: configuration (the key); 429: rate_limited (quota exhausted: fatal), with
//   the advised delay; 408/409/5xx: transient; other 4xx: permanent (the request itself
//   was refused and would be again).
[[nodiscard]] EmbedFailure classify_batch_http(BatchCall call, int status, const ResponseHeaders& headers,
                                               std::string_view body);

}  // namespace lens::provider::openai
