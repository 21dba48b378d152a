// Everything a run needs to know, already validated by the cli.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "core/model_table.h"
#include "core/source_mapping.h"
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
  // [source]: the input templates the input texts are rendered with (core::build_input_text).
  core::SourceMapping mapping;
  core::ModelSpec model;
  std::optional<int> dimensions;  // sent to the provider when set
  // The size every vector of this (provider, model) has, when the model table or the
  // configuration knows it (`dimensions` when set). The provider checks each answer against
  // it: answers of another size are never written, and several in a row stop the run as a
  // configuration error (the model behind the endpoint is not the one named).
  std::optional<int> expected_dimensions;
  std::size_t batch_size = 512;       // max inputs per request
  std::optional<std::int64_t> limit;  // max exchanges to embed in this run
  // The input definition (core::input_definition_fingerprint) to record for the pair
  // (Store::record_input_definition) once a pass read every input to the end without
  // reaching `limit` and everything it handed on is committed; "" records nothing.
  std::string record_input_definition;
  // The first pass reads every input as with scope.rehash (the input definition changed
  // since it was last recorded); later --follow passes read as `scope` says.
  bool rehash_first_pass = false;
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

  // The circuit breaker (circuit_breaker.h): the provider counts as unavailable after this
  // long without an answer (and 3 unavailable outcomes in a row).
  std::chrono::milliseconds unavailable_after{30'000};
  // Named in the breaker's message as the setting to check when nothing answers, e.g.
  // "--base-url / SUPERMIND_BASE_URL (https://...)"; empty: "the provider's base URL".
  std::string endpoint_hint;

  // --follow: one run until a stop request. After a pass over the keyset found the end
  // (and what it sent is committed), the next pass starts on a change notification or
  // after follow_poll. An open breaker pauses the run and probes with one input, backing
  // off from 1 s up to probe_cap, instead of ending it.
  bool follow = false;
  std::chrono::milliseconds follow_poll{2'000};
  // --follow with change tracking (scope.changes): passes read only what the change queue
  // names, and one pass over the whole keyset at least this often catches what the queue
  // cannot name (a row deleted from message_embeddings by hand, items a cancelled batch
  // released). A sweep takes as long as a no-op rerun.
  std::chrono::milliseconds follow_sweep{std::chrono::minutes(15)};
  std::chrono::milliseconds probe_cap{30'000};
  // --follow: a progress report when something changed since the last one, or at least
  // this often while idle (a heartbeat); a run without --follow reports every interval.
  std::chrono::milliseconds heartbeat{std::chrono::minutes(5)};
};

}  // namespace lens::pipeline
