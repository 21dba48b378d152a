// `run --batch-api`: a backfill through the OpenAI Batch API. One call does a pass:
// collect (poll every unfinished batch of the pair; apply the results of finished ones),
// then submit (pack pending exchanges into input files within the file limits and the
// enqueued-token budget; record each batch and its items durably, then upload and create
// it), and again while either made progress; with `follow`, passes repeat until a stop
// request. Crash-safe by construction:
//   - a batch and its items are in the ledger (store/batch_ledger.h) before its file is
//     uploaded; its local key is in the file name and in the batch's metadata, so a batch
//     created but not recorded is found again by find_batches and adopted, never
//     submitted twice; a recorded batch that was never created is released (unpaid);
//   - results are written with the Store's upsert (fencing applies) and a batch is marked
//     done only once all its results are written, so a crash while downloading or writing
//     redoes the download, which writes the same rows again;
//   - a result is written only while the message's input still hashes to the recorded
//     content_sha256; otherwise it is discarded and the exchange is pending again.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "core/types.h"
#include "pipeline/options.h"
#include "provider/openai/batch_client.h"
#include "provider/openai/batch_file_writer.h"
#include "store/batch_ledger.h"
#include "store/store.h"
#include "tokenizer/tokenizer.h"
#include "util/result.h"

namespace lens::batch {

struct BatchRunOptions {
  // scope, mapping, model, dimensions, batch_size (inputs per request), limit, long_input
  // (truncate only: chunking is refused by the cli), follow, rows_per_transaction, page_size.
  pipeline::RunOptions run;
  std::string encoding_format = "base64";
  // Enqueued tokens allowed at once over the pair's unfinished batches (the provider's
  // per-model queue limit); a batch is cut so the sum stays under it.
  std::int64_t queue_tokens = 3'000'000;
  provider::openai::BatchFileLimits file_limits;
  std::int64_t request_tokens = 300'000;            // tokens per request at most (the Batch guide)
  std::string work_dir = ".";                       // where input files are written (then removed)
  std::chrono::milliseconds poll_interval{10'000};  // follow: between passes
  int download_attempts = 5;                        // a download that fails transiently is resumed this often
};

struct BatchRunDeps {
  store::Store& store;
  store::BatchLedger& ledger;  // the store's (Store::batch_ledger())
  provider::openai::BatchClient& client;
  const tokenizer::Tokenizer& tokenizer;
  const std::atomic<int>* stop = nullptr;  // non-zero: finish the current step and return
  std::string arguments;                   // JSON for embedding_runs.arguments
  std::string worker;
};

struct BatchRunOutcome {
  std::int64_t run_id = 0;
  core::RunStats stats;  // embedded/unchanged/failed/tokens as the synchronous run counts them
  std::int64_t batches_submitted = 0;
  std::int64_t items_submitted = 0;
  std::int64_t batches_collected = 0;
  std::int64_t items_released = 0;   // expired, cancelled, rejected batches: pending again
  std::int64_t items_discarded = 0;  // results of messages edited meanwhile: pending again
  std::int64_t batches_adopted = 0;  // found again by their metadata after a crash
  std::int64_t outputs_gone = 0;     // result files the provider no longer has (items released)
  std::int64_t batches_in_flight = 0;
  std::int64_t items_in_flight = 0;
  std::int64_t pending_left = 0;  // eligible exchanges neither held nor done (queue full, --limit)
  bool interrupted = false;
  std::optional<util::Error> fatal;
};

// Runs passes as described above. Never throws. Every error that stops it is in
// `fatal`: configuration for a provider without the Batch API (404 on /v1/batches or
// /v1/files: "run without --batch-api") or a rejected key, the store's errors as classified.
[[nodiscard]] BatchRunOutcome run_batch_api(const BatchRunOptions& options, const BatchRunDeps& deps);

}  // namespace lens::batch
