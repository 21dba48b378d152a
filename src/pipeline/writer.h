// The writer: results in, one transaction per group of them out. Nothing is counted done
// before it is committed, and the run's counters are written in the same transaction.
#pragma once

#include <chrono>
#include <cstdint>
#include <variant>

#include "core/types.h"
#include "pipeline/options.h"
#include "pipeline/run_state.h"
#include "store/store.h"
#include "util/bounded_queue.h"

namespace lens::pipeline {

// What the reader (touches, empty_input failures) and the dispatcher (rows, failures)
// hand to the writer.
using WriterMessage = std::variant<core::EmbeddingRow, core::RowTouch, core::Failure>;
using ResultQueue = util::BoundedQueue<WriterMessage>;

class Writer {
 public:
  // A group is committed when it holds options.rows_per_transaction results, when its
  // oldest result waited this long, and when the queue is closed.
  static constexpr std::chrono::milliseconds k_flush_after{250};

  // All references are owned by the caller and outlive run(). `store` is used by the
  // writer's thread alone while run() runs; rows are written under `run_id` and
  // options.scope's provider and model.
  Writer(const RunOptions& options, store::Store& store, std::int64_t run_id, RunState& state,
         ResultQueue& results);

  // The writer thread's body: pops `results` until it is closed and drained, committing
  // through with_store_retries. Each commit carries the counters as they will be once it
  // commits (state.counters plus the group), and state.counters moves only after success.
  // Items the store fenced (late writes, store.h) are counted in state.counters.fenced,
  // not in embedded/unchanged/failed, and logged once per run.
  // On a write that still fails after the retries: state.set_fatal(error), nothing of the
  // group is counted, and the rest of `results` is drained without being written, so the
  // producers never block on a full queue. Returns when `results` is closed and empty.
  void run();

 private:
  bool flush();

  const RunOptions& options_;
  store::Store& store_;
  RunState& state_;
  ResultQueue& results_;
  store::WriteBatch batch_;
  std::int64_t batch_tokens_ = 0;
  bool fence_logged_ = false;
};

}  // namespace lens::pipeline
