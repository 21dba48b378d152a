// Writes a Batch API input file: one request line
// {"custom_id","method":"POST","url":"/v1/embeddings","body":{"model","input":[..],
// "encoding_format","dimensions"?}} per call, streamed to disk, within the file limits.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "provider/openai/batch_wire.h"
#include "util/result.h"

namespace lens::provider::openai {

struct BatchFileLimits {
  std::size_t max_requests = k_batch_max_requests;
  std::size_t max_inputs = k_batch_max_inputs;
  std::uint64_t max_bytes = k_batch_max_file_bytes;
};

struct BatchFileOptions {
  std::string model;
  std::string encoding_format = "base64";  // or "float"
  std::optional<int> dimensions;           // sent only when set
  BatchFileLimits limits;
  bool sync_on_finish = true;  // fsync the file (and its folder) in finish()
};

// One input file being written. Not thread-safe. Lines go through a buffer of its own,
// so memory does not grow with the file.
class BatchFileWriter {
 public:
  // Creates (or truncates) `path`. On failure: invalid_argument (empty model, bad
  // encoding_format), permanent (the file cannot be created; errno's text).
  [[nodiscard]] static util::Result<std::unique_ptr<BatchFileWriter>> create(std::string path,
                                                                             BatchFileOptions options);
  ~BatchFileWriter();  // closes the file (unsynced) if finish() was not called
  BatchFileWriter(const BatchFileWriter&) = delete;
  BatchFileWriter& operator=(const BatchFileWriter&) = delete;

  // Appends one request when it fits the limits together with what is written already:
  // true when written, false when it does not fit (nothing written; start a new file).
  // REQUIRES: 1 <= inputs.size() <= 2048, and custom_id not used before in this file
  // (checked: invalid_argument). A single request that could never fit an empty file is
  // invalid_argument too. On a write error: permanent, and the file is unusable.
  [[nodiscard]] util::Result<bool> append(std::string_view custom_id,
                                          std::span<const std::string_view> inputs);

  // Flushes and closes the file (fsyncs it when sync_on_finish). Idempotent. On failure:
  // permanent.
  [[nodiscard]] util::Status finish();

  [[nodiscard]] const std::string& path() const;
  [[nodiscard]] std::uint64_t bytes() const;   // written so far (what the file will hold)
  [[nodiscard]] std::size_t requests() const;  // lines
  [[nodiscard]] std::size_t inputs() const;    // embedding inputs over all lines
  [[nodiscard]] bool empty() const { return requests() == 0; }

 private:
  struct Impl;
  explicit BatchFileWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The exact size of the line append() would write (newline included), for planning.
[[nodiscard]] std::uint64_t batch_line_bytes(std::string_view custom_id,
                                             std::span<const std::string_view> inputs,
                                             const BatchFileOptions& options);

}  // namespace lens::provider::openai
