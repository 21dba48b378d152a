// Everything a run needs to know, already validated by the cli.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "core/model_table.h"
#include "store/store.h"
#include "util/backoff.h"

namespace lens::pipeline {

enum class LongInput { truncate, chunk };

struct RateLimits {
  double requests_per_minute = 0;  // 0 = unlimited
  double tokens_per_minute = 0;    // 0 = unlimited
};

struct RunOptions {
  store::WorkScope scope;
  core::ModelSpec model;
  std::optional<int> dimensions;      // sent to the provider when set
  std::size_t batch_size = 512;       // max inputs per request
  std::optional<std::int64_t> limit;  // max exchanges to embed in this run
  bool dry_run = false;
  LongInput long_input = LongInput::truncate;
  std::size_t chunk_overlap_tokens = 0;
  int max_concurrency = 8;  // requests in flight at most
  RateLimits rate;
  int max_attempts = 6;  // per request, before its items are recorded as failures
  util::BackoffPolicy backoff;
  std::size_t page_size = 1000;  // exchanges read per keyset page
  std::size_t rows_per_transaction = 1000;
  std::chrono::milliseconds progress_interval{1000};
  // After a stop request, in-flight requests get this long to finish before they are
  // abandoned (their items are simply redone by the next run).
  std::chrono::milliseconds drain_timeout{10'000};
};

}  // namespace lens::pipeline
