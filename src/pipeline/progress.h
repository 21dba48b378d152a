// What the pipeline reports while it runs; the cli turns it into a TTY line or logfmt.
#pragma once

#include <chrono>
#include <cstdint>

#include "core/types.h"

namespace lens::pipeline {

struct ProgressSnapshot {
  core::RunStats stats;
  std::int64_t total = -1;   // exchanges this run is expected to handle (-1: unknown)
  std::int64_t handled = 0;  // embedded + unchanged + failed so far
  std::chrono::duration<double> elapsed{0};
  double tokens_per_minute = 0;  // over the last few seconds
  double tpm_limit = 0;          // 0 when unlimited
  int in_flight = 0;
  int concurrency_limit = 0;
  double usd_spent = 0;
  bool final = false;
};

class ProgressListener {
 public:
  virtual ~ProgressListener() = default;
  // Called from the pipeline's dispatcher thread, about every progress_interval and
  // once more at the end with final = true.
  virtual void on_progress(const ProgressSnapshot& snapshot) = 0;
};

}  // namespace lens::pipeline
