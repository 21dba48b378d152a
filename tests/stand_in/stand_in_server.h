// An OpenAI-compatible /embeddings server for tests and benchmarks, with switchable
// latency, rate limits (OpenAI's 429 bodies and headers) and faults.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "stand_in_batch.h"

namespace lens::stand_in {

struct StandInOptions {
  std::string host = "127.0.0.1";
  int port = 0;                   // 0: any free port
  int threads = 512;              // HTTP/1.1 keep-alive holds a thread per connection
  int default_dimensions = 1536;  // when the request sends no "dimensions"
  std::string models;             // comma-separated; set: other models get OpenAI's 404
  std::string api_key;            // set: requests need "Authorization: Bearer <key>" (else 401)
  bool exact_tokens = true;       // cl100k_base counts; false (or tokenizer missing): ceil(bytes/4)

  double latency_ms = 0;         // before answering (429s are answered at once)
  double latency_jitter_ms = 0;  // uniform extra in [0, jitter]
  double latency_per_1k_tokens_ms = 0;

  double rpm = 0;                    // 0: unlimited
  double tpm = 0;                    // 0: unlimited
  double burst_seconds = 1.0;        // bucket size in seconds of refill, like OpenAI's quantised limits
  bool retry_after_headers = false;  // also send retry-after and retry-after-ms on 429
  bool frozen_buckets = false;       // the buckets never refill: what a request took stays taken,
                                     // so whether the next one meets a 429 does not depend on time
  bool quota_exhausted = false;      // every request: 429 insufficient_quota

  int max_input_tokens = 8191;  // longer inputs: the exact context-length 400
  std::string reject_marker;    // inputs containing it: the context-length 400 as well
  bool float_only = false;      // ignore encoding_format; always answer float arrays
  bool reject_base64 = false;   // 400 for encoding_format=base64 (a server without it)
  bool shuffle = false;         // data[] in a random order

  // Fault probabilities per request (drawn in this order, at most one fault per request).
  double p_429 = 0;  // a 429 rate-limit answer although the buckets have room
  double p_500 = 0, p_502 = 0, p_503 = 0;
  double p_reset = 0;      // TCP reset before any answer
  double p_hang = 0;       // no answer for hang_ms, then a reset
  double p_malformed = 0;  // 200 with a body that is not JSON
  double p_truncated = 0;  // 200 with the body cut in half
  double p_short = 0;      // 200 with one embedding missing
  double p_nan = 0;        // 200 with a NaN in one embedding
  double p_bad_dims = 0;   // 200 with one embedding one value short
  int hang_ms = 30'000;
  std::int64_t fault_limit = -1;  // at most this many injected faults in total (-1: no limit)
  std::uint64_t seed = 1;

  BatchOptions batch;  // the Files and Batch API (/v1/files, /v1/batches); see stand_in_batch.h
};

class StandInServer {
 public:
  explicit StandInServer(StandInOptions options);
  ~StandInServer();
  StandInServer(const StandInServer&) = delete;
  StandInServer& operator=(const StandInServer&) = delete;

  // Binds and serves on a background thread. Returns the port, or -1 when binding failed.
  int start();
  // Stops serving; wakes handlers that sleep (latency, hangs).
  void stop();
  [[nodiscard]] int port() const;
  // Counters as JSON (the body of GET /stats).
  [[nodiscard]] std::string stats_json() const;
  // Zeroes the counters and refills the buckets (POST /stats/reset).
  void reset_stats();
  // The Batch API, to switch its behaviour from an in-process test (or POST /control/batch).
  [[nodiscard]] BatchService& batch();
  // An outage: every request is answered with `http_status` (a 5xx) until it is called
  // with 0 (POST /outage?status=N). Counted as "outage" in the stats. Any thread.
  void set_outage(int http_status);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace lens::stand_in
