// What the pipeline reports while it runs; the cli turns it into a TTY line or logfmt.
#pragma once

#include <chrono>
#include <cstdint>

#include "core/types.h"

namespace lens::pipeline {

struct ProgressSnapshot {
  core::RunStats stats;      // committed counters (requests, retries: as they happen)
  std::int64_t total = -1;   // exchanges this run is expected to handle (-1: unknown)
  std::int64_t handled = 0;  // embedded + unchanged + failed + fenced so far
  std::chrono::duration<double> elapsed{0};
  double tokens_per_minute = 0;  // over the last few seconds
  // The token limit the run holds to now: the configured one, or the one adopted from
  // the server's x-ratelimit-limit-tokens when that is lower (or none was configured).
  // 0 when unlimited.
  double tpm_limit = 0;
  bool tpm_limit_from_server = false;  // tpm_limit is the server's (x-ratelimit-limit-tokens)
  int in_flight = 0;                   // requests sent and not answered
  double usd_spent = 0;
  bool final = false;
};

class ProgressListener {
 public:
  virtual ~ProgressListener() = default;
  // Called from the thread that called run_pipeline (the dispatcher's), about every
  // progress_interval and once more at the end with final = true. `snapshot` is valid
  // only during the call. Must not block for long: the dispatcher waits for it.
  virtual void on_progress(const ProgressSnapshot& snapshot) = 0;
};

}  // namespace lens::pipeline
