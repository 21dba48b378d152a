// The stand-in's Files and Batch API (/v1/files, /v1/batches) for /v1/embeddings batches,
// with switchable behaviour: timing, validation failures, per-request errors, expiry,
// shuffled output, deleted outputs, faults while polling or downloading, and the
// enqueued-token limit. Output files are generated when they are read, from the stored
// input file, so a file of any size streams in flat memory.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace httplib {
class Server;
}

namespace lens::stand_in {

class Billing;

// Fires for the next `next` calls it is asked about, after that with probability `p`.
struct BatchFault {
  std::int64_t next = 0;
  double p = 0;
};

struct BatchOptions {
  bool enabled = true;  // false: no /v1/files or /v1/batches (404, a provider without them)

  // Timing, from a batch's creation: `validating` for validating_ms, then `in_progress`
  // while its requests are processed at an even pace over completion_ms (request_counts
  // grow), `finalizing` for finalizing_ms, then `completed`. completion_ms < 0: requests
  // are not processed until the control endpoint says "complete" or "expire".
  double validating_ms = 0;
  double completion_ms = 0;
  double finalizing_ms = 0;
  // >= 0: a batch still in progress this long after it started expires; the requests
  // processed by then are completed (and billed), the rest come back as batch_expired.
  double expire_ms = -1;

  std::int64_t fail_validation = 0;  // the next N batches created end `failed` (invalid_request)
  bool shuffle_output = false;       // output and error lines in a random (per batch, fixed) order
  double p_request_500 = 0;          // per request: a 500 in the error file instead of a result
  double queue_tokens = 0;           // enqueued-token limit (0: none); over it: failed, token_limit_exceeded
  bool outputs_deleted = false;      // output and error files answer 404, as after OpenAI's 30 days

  BatchFault poll_503;        // GET /v1/batches[/id]: a 503
  BatchFault poll_reset;      // GET /v1/batches[/id]: a TCP reset instead of an answer
  BatchFault download_503;    // GET /v1/files/{id}/content: a 503 before any byte
  BatchFault download_reset;  // ...: a TCP reset after download_reset_after_bytes (or before the end)
  BatchFault download_drop;   // ...: the connection closed (FIN) there instead: what was sent arrives
  std::int64_t download_reset_after_bytes = 1 << 20;

  std::string files_dir;  // where uploads are kept; "": a fresh folder under TMPDIR, removed at the end
  std::uint64_t seed = 1;
};

// Sets one option by its name (the field's name; a BatchFault's parts as NAME_next and
// NAME_p, e.g. download_reset_next): the stand-in's `--batch KEY=VALUE` flag and the
// fields of POST /control/batch. False for an unknown key or a bad value.
bool set_batch_option(BatchOptions& options, std::string_view key, std::string_view value);

// What the service needs from the server that hosts it.
struct BatchHost {
  std::string api_key;  // "": no auth
  std::string models;   // comma-separated; "": any
  int default_dimensions = 1536;
  int max_input_tokens = 8191;
  std::string reject_marker;  // inputs containing it: context-length 400
  std::function<std::size_t(std::string_view)> count_tokens;
  Billing* billing = nullptr;  // not owned
};

// Thread-safe: cpp-httplib calls its handlers from many threads.
class BatchService {
 public:
  BatchService(BatchOptions options, BatchHost host);
  ~BatchService();
  BatchService(const BatchService&) = delete;
  BatchService& operator=(const BatchService&) = delete;

  // Adds /v1/files..., /v1/batches... (when enabled) and POST /control/batch.
  void register_routes(httplib::Server& server);

  // Control (also over HTTP: POST /control/batch, see stand_in_batch.cpp).
  void update(const std::function<void(BatchOptions&)>& change);
  // Every batch in progress (or the one named) finishes now: all its requests processed.
  void complete(std::string_view batch_id = {});
  // Every batch in progress (or the one named) expires now with `fraction` of its
  // requests processed.
  void expire(std::string_view batch_id = {}, double fraction = 0.5);

  // ,"batch_...":N counters appended to the /stats JSON (starts with a comma).
  [[nodiscard]] std::string stats_fields() const;
  void reset_stats();
  // Wakes and ends streams in progress (server shutdown).
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace lens::stand_in
