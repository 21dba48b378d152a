// run_batch_api: passes of collect and submit until nothing moves (or, with follow, until a
// stop request), recorded as one run. See batch_run.h.
#include "batch/batch_run.h"

#include <fmt/core.h>
#include <thread>

#include "batch/driver.h"
#include "util/log.h"

namespace lens::batch {
namespace {

// Without follow a run stops after this many passes that moved something, so that a
// provider that keeps failing batches at once cannot keep it busy forever.
constexpr int k_max_passes = 50;

bool sleep_unless_stopped(std::chrono::milliseconds total, const std::atomic<int>* stop) {
  const auto end = std::chrono::steady_clock::now() + total;
  while (std::chrono::steady_clock::now() < end) {
    if (stop && stop->load() != 0) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return !(stop && stop->load() != 0);
}

}  // namespace

BatchRunOutcome run_batch_api(const BatchRunOptions& options, const BatchRunDeps& deps) {
  BatchRunOutcome out;
  // A provider without the Batch API answers 404 on the collection: say so before recording
  // anything.
  if (auto probe = deps.client.list_batches({}, 1); !probe) {
    const auto& e = probe.error().error;
    if (e.code != util::ErrorCode::transient && e.code != util::ErrorCode::rate_limited) {
      out.fatal = e;
      return out;
    }
  }
  const auto& scope = options.run.scope;
  auto run_id = deps.store.begin_run({scope.provider, scope.model, deps.arguments, deps.worker});
  if (!run_id) {
    out.fatal = run_id.error();
    return out;
  }
  out.run_id = *run_id;
  Driver driver(options, deps, out);
  driver.run_id = *run_id;

  for (int pass = 1;; ++pass) {
    auto collected = driver.collect();
    if (!collected) {
      out.fatal = collected.error();
      break;
    }
    if (driver.stopping()) break;
    auto submitted = driver.submit();
    if (!submitted) {
      out.fatal = submitted.error();
      break;
    }
    if (driver.stopping()) break;
    // Results gone (deleted by the provider): their items were submitted again once; a
    // provider that keeps losing outputs must not be paid over and over in one run.
    if (out.outputs_gone > 0) break;
    const bool moved = *collected > 0 || *submitted > 0;
    if (options.run.follow) {
      if (!moved && !sleep_unless_stopped(options.poll_interval, deps.stop)) break;
      continue;
    }
    if (!moved || pass >= k_max_passes) break;
  }
  if (auto s = driver.flush(true); !s && !out.fatal) out.fatal = s.error();
  out.interrupted = driver.stopping();

  auto open = deps.ledger.list_batches(scope.provider, scope.model, true);
  if (open) {
    out.batches_in_flight = static_cast<std::int64_t>(open->size());
    for (const auto& b : *open)
      out.items_in_flight += b.items;
  } else if (!out.fatal) {
    out.fatal = open.error();
  }
  if (auto left = deps.store.count_pending(scope); left) {
    out.pending_left = *left;
  } else if (!out.fatal) {
    out.fatal = left.error();
  }
  core::RunStatus status = core::RunStatus::completed;
  std::string cause;
  if (out.fatal) {
    status = core::RunStatus::failed;
    cause = out.fatal->message;
  } else if (out.interrupted || out.items_in_flight > 0 || out.pending_left > 0) {
    status = core::RunStatus::interrupted;
    if (out.items_in_flight > 0)
      cause = fmt::format("{} items in {} unfinished batches", out.items_in_flight, out.batches_in_flight);
  }
  if (auto s = deps.store.finish_run(out.run_id, status, out.stats, cause); !s)
    util::log_warn("recording the end of the run: {}", s.error().message);
  return out;
}

}  // namespace lens::batch
