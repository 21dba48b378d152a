// Reading a Batch API output or error file as it streams in: bytes are cut into lines,
// each line {"id","custom_id","response":{"status_code","request_id","body"},"error"} is
// parsed, its embeddings body decoded by the synchronous client's ResponseParser into
// one reused buffer, and handed to the caller. Memory stays flat whatever the file's size.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "provider/provider.h"
#include "util/result.h"

namespace lens::provider::openai {

// What the caller sent under a custom_id: how many inputs, and the dimensions asked for
// (nullopt: the model's default; the first vector's length is then accepted).
struct RequestShape {
  std::size_t n_inputs = 0;
  std::optional<int> dimensions;
};

// One line of an output or error file. Every view points into the reader's buffers and
// is valid only during the call that receives it.
struct BatchResultLine {
  std::string_view custom_id;
  std::string_view line_id;     // "id" (batch_req_...); "" when absent
  std::string_view request_id;  // response.request_id; "" when absent
  int status_code = 0;          // response.status_code; 0 when the line has no response
  // Set when the request succeeded: vectors of its inputs in request order (matched by
  // the body's `index`), n_inputs × dimensions, checked for count, dimensions and NaN.
  const EmbedSuccess* success = nullptr;
  // Set otherwise, classified:
  //   a non-2xx response: as the synchronous client classifies that answer (a 400 about
  //     context length: bad_input with context_length; 500: transient; ...);
  //   an "error" without a response: batch_expired and batch_cancelled (and server_error,
  //     timeout, rate_limit codes) transient: submit again; any other code permanent;
  //   a 2xx body that does not parse or does not fit the shape: invalid_response;
  //   a custom_id the caller does not know (shape() gave nullopt): invalid_response.
  std::optional<EmbedFailure> failure;
  std::string_view error_code;  // error.code of the line or of the response body; "" when none
};

// Counts of what a reader delivered.
struct BatchReadStats {
  std::uint64_t lines = 0;      // delivered lines
  std::uint64_t succeeded = 0;  // lines with `success`
  std::uint64_t failed = 0;     // lines with `failure`
  std::uint64_t bytes = 0;      // bytes consumed, up to and including the last delivered line's newline
};

// Parses lines fed in arbitrary pieces. Not thread-safe; one reader per download.
class BatchResultReader {
 public:
  // The shape of custom_id's request, or nullopt when the caller does not know it.
  using ShapeFn = std::function<std::optional<RequestShape>(std::string_view custom_id)>;
  // One line; false stops the reading (feed() then returns a `cancelled` error).
  using LineFn = std::function<bool(const BatchResultLine&)>;

  // `model` is only quoted in failure messages. `max_line_bytes` bounds the memory one
  // line may take (the largest legal line: 2,048 inputs of 3,072-d float arrays, ~130 MB).
  BatchResultReader(ShapeFn shape, LineFn on_line, std::string model,
                    std::size_t max_line_bytes = std::size_t{256} << 20);
  ~BatchResultReader();
  BatchResultReader(const BatchResultReader&) = delete;
  BatchResultReader& operator=(const BatchResultReader&) = delete;

  // Consumes `bytes`; every line completed by them is parsed and delivered in file order.
  // On failure nothing more is delivered (the reader is spent): invalid_response for a
  // line that is not a JSON object with a custom_id, or longer than max_line_bytes;
  // cancelled when on_line returned false.
  [[nodiscard]] util::Status feed(std::string_view bytes);
  // The end of the file: a last line without a newline is delivered. Same failures.
  [[nodiscard]] util::Status finish();

  [[nodiscard]] const BatchReadStats& stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lens::provider::openai
