// The OpenAI Batch API client: files (upload streamed from disk, list, metadata,
// delete, content streamed line by line) and batches (create, retrieve, list, cancel).
// Blocking calls on one curl handle; the TLS, proxy, timeout, header and redaction rules
// are the synchronous client's (curl_setup.h).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "provider/openai/batch_results.h"
#include "provider/openai/batch_wire.h"
#include "provider/openai/openai_provider.h"

namespace lens::provider::openai {

struct BatchClientOptions {
  // Uploads and downloads (hundreds of MB) have no whole-transfer timeout; they fail when
  // fewer than one byte per second moved for this long. The small JSON calls keep
  // OpenAiOptions::request_timeout.
  std::chrono::milliseconds stall_timeout{120'000};
  // Checked while a transfer runs: when it turns true the call ends with `cancelled`.
  // Not owned; must outlive the client when set.
  const std::atomic<bool>* cancel = nullptr;
};

// How far a download got, also when it failed: a retry may pass `bytes` as skip_bytes so
// the lines already handed over are not handed over again.
struct DownloadProgress {
  std::uint64_t bytes = 0;  // of the file, up to and including the last delivered line's newline
  BatchReadStats read;      // what the reader delivered in this call
};

// Every call blocks until it has an answer. Failures are classified (see
// classify_batch_http in batch_wire.h for answers; transport failures as the synchronous
// client's: no answer, resets, timeouts → transient; TLS verification → fatal; a body
// that does not parse → invalid_response; the cancel flag → cancelled). Error messages
// are redacted; the API key never appears in them.
//
// Thread safety: not thread-safe; one thread at a time uses one client (it owns one curl
// handle, whose connection it reuses). Clients are independent of each other.
class BatchClient {
 public:
  ~BatchClient();
  BatchClient(const BatchClient&) = delete;
  BatchClient& operator=(const BatchClient&) = delete;

  // ---- files ----

  // POST /files, multipart with purpose=batch and the file read from `path` while it is
  // sent (never held in memory). `filename` is the name the provider keeps (put the local
  // batch key in it, to find the file again after a crash with list_files). On failure
  // also: not_found when `path` cannot be read, invalid_argument when it is larger than
  // the 200 MB a batch file may hold.
  [[nodiscard]] BatchResult<FileObject> upload_file(const std::string& path, std::string_view filename);
  // GET /files?purpose=..&limit=..&after=.. (newest first). purpose "" lists all.
  [[nodiscard]] BatchResult<FilePage> list_files(std::string_view purpose, std::string_view after = {},
                                                 int limit = 100);
  // Every uploaded file named `filename` (purpose batch), newest first, paging through
  // list_files until the list ends or files are older than `created_after` (unix seconds).
  [[nodiscard]] BatchResult<std::vector<FileObject>> find_files(std::string_view filename,
                                                                std::int64_t created_after = 0);
  // GET /files/{id}. A deleted or unknown file: not_found.
  [[nodiscard]] BatchResult<FileObject> get_file(std::string_view file_id);
  // DELETE /files/{id}. A file that is already gone: not_found.
  [[nodiscard]] BatchStatusResult delete_file(std::string_view file_id);

  // GET /files/{id}/content, streamed: each line is parsed and decoded as it arrives and
  // given to `on_line` (see BatchResultReader), in file order; the first `skip_bytes`
  // bytes of the file (what an earlier, interrupted call delivered: its progress.bytes)
  // are read and dropped. Memory stays flat whatever the file's size. `progress` is
  // updated also on failure. A file that is gone (deleted, or past OpenAI's 30 days):
  // not_found. A connection lost midway: transient, and the lines delivered before stay
  // delivered. `on_line` returning false: cancelled.
  [[nodiscard]] BatchStatusResult download_results(std::string_view file_id,
                                                   const BatchResultReader::ShapeFn& shape,
                                                   const BatchResultReader::LineFn& on_line,
                                                   DownloadProgress& progress, std::uint64_t skip_bytes = 0);

  // ---- batches ----

  // POST /batches for /v1/embeddings with a 24h window and `metadata` (at most 16 keys;
  // put the local batch key there, to find the batch again with find_batches). A provider
  // without the Batch API: configuration ("run without --batch-api").
  [[nodiscard]] BatchResult<BatchObject> create_batch(
      std::string_view input_file_id, const std::vector<std::pair<std::string, std::string>>& metadata);
  // GET /batches/{id}. An unknown batch: not_found.
  [[nodiscard]] BatchResult<BatchObject> get_batch(std::string_view batch_id);
  // GET /batches?after=..&limit=.. (newest first; limit 1..100).
  [[nodiscard]] BatchResult<BatchPage> list_batches(std::string_view after = {}, int limit = 100);
  // Every batch whose metadata[key] == value, newest first, paging through list_batches
  // until the list ends or batches are older than `created_after` (unix seconds).
  [[nodiscard]] BatchResult<std::vector<BatchObject>> find_batches(std::string_view key,
                                                                   std::string_view value,
                                                                   std::int64_t created_after = 0);
  // POST /batches/{id}/cancel: the batch as it is now (cancelling, or already final).
  [[nodiscard]] BatchResult<BatchObject> cancel_batch(std::string_view batch_id);

  struct Impl;

 private:
  friend BatchResult<std::unique_ptr<BatchClient>> make_batch_client(const OpenAiOptions&,
                                                                     const BatchClientOptions&);
  explicit BatchClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Uses base_url, api_key, connect_timeout, request_timeout, verify_tls, user_agent and
// extra_headers of `options` (model only in messages; encoding_format not at all).
// REQUIRES: as make_openai_provider, called before other threads use libcurl.
// On failure: invalid_argument (a base URL that is not http(s)), internal (no curl handle).
[[nodiscard]] BatchResult<std::unique_ptr<BatchClient>> make_batch_client(
    const OpenAiOptions& options, const BatchClientOptions& batch = {});

}  // namespace lens::provider::openai
