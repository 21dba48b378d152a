// The Store interface: where exchanges come from and embeddings, failures and runs go.
// Implementations: sqlite/ (embedded default) and postgres/. One Store object is one
// connection and is used by one thread at a time; open one per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/types.h"
#include "util/result.h"

namespace lens::store {

// Which rows a run works on.
struct WorkScope {
  std::string provider;
  std::string model;
  bool force = false;           // also exchanges that already have an up-to-date row
  bool retry_failures = false;  // also exchanges with a recorded failure
};

// Keyset position over user messages ordered by (created_at, id). Never OFFSET.
struct PendingCursor {
  bool started = false;
  std::string created_at;
  std::string id;
};

struct PendingPage {
  std::vector<core::Exchange> items;
  bool exhausted = false;  // no user message after the cursor
};

struct RunRecord {
  std::string provider;
  std::string model;
  std::string arguments;  // JSON of the effective arguments, secrets masked
  std::string worker;     // host:pid of the process
};

// Everything one batch commits, in one transaction: the cursor of a run only ever moves
// past what is in here once this returned success.
struct WriteBatch {
  std::int64_t run_id = 0;
  std::string provider;
  std::string model;
  std::vector<core::EmbeddingRow> rows;  // upserted: inserted, or updated in place
  std::vector<core::RowTouch> touches;   // unchanged input: refresh markers only
  std::vector<core::Failure> failures;   // upserted, attempts += 1
  core::RunStats progress;               // cumulative counters of the run so far
};

struct FailureRecord {
  std::string provider;
  std::string model;
  std::string user_message_id;
  core::FailureReason reason = core::FailureReason::provider_rejected;
  std::string detail;
  std::int64_t attempts = 0;
  std::string first_failed_at;
  std::string last_failed_at;
};

struct RunSummary {
  std::int64_t id = 0;
  std::string provider;
  std::string model;
  std::string started_at;
  std::string finished_at;  // empty while running
  core::RunStatus status = core::RunStatus::running;
  core::RunStats stats;
  double duration_seconds = 0;
};

struct ModelStatus {
  std::string provider;
  std::string model;
  std::int64_t embedded = 0;
  std::int64_t pending = 0;  // eligible exchanges without a row
  std::int64_t stale = 0;    // rows whose source changed since they were written
  std::int64_t failed = 0;
  std::vector<std::pair<std::string, std::int64_t>> failures_by_reason;
};

struct StatusReport {
  std::int64_t eligible = 0;  // user messages with non-blank content
  std::vector<ModelStatus> models;
  std::vector<RunSummary> recent_runs;
};

struct SearchHit {
  std::string user_message_id;
  std::optional<std::string> assistant_message_id;
  std::string conversation_id;
  std::string created_at;
  std::string snippet;  // beginning of the user message
  double score = 0;     // cosine similarity
};

class Store {
 public:
  virtual ~Store() = default;

  // Creates or upgrades the output schema (idempotent, versioned).
  [[nodiscard]] virtual util::Status migrate() = 0;

  // Up to `max_items` exchanges after `cursor` that `scope` needs work on: no row yet,
  // a row whose source changed (assistant reply or updated_at differs), or every row
  // with scope.force. Blank user content is never returned; exchanges with a recorded
  // failure only with scope.retry_failures (or when edited since). Advances `cursor`
  // past everything it looked at.
  [[nodiscard]] virtual util::Result<PendingPage> next_pending(const WorkScope& scope, PendingCursor& cursor,
                                                               std::size_t max_items) = 0;

  // Commits `batch` in one transaction. On failure nothing of it is visible; an error
  // whose outcome is unknown is reported as transient and redoing the batch is safe.
  [[nodiscard]] virtual util::Status write_batch(const WriteBatch& batch) = 0;

  [[nodiscard]] virtual util::Result<std::int64_t> begin_run(const RunRecord& run) = 0;
  [[nodiscard]] virtual util::Status finish_run(std::int64_t run_id, core::RunStatus status,
                                                const core::RunStats& stats) = 0;

  // An estimate of the work a run of `scope` will find, for progress totals: exchanges
  // without a row (all eligible ones with force). Cheap; stale rows are not counted.
  [[nodiscard]] virtual util::Result<std::int64_t> count_pending(const WorkScope& scope) = 0;

  [[nodiscard]] virtual util::Result<StatusReport> status(std::size_t recent_runs) = 0;
  [[nodiscard]] virtual util::Result<std::vector<FailureRecord>> failures(const std::string& provider,
                                                                          const std::string& model) = 0;

  // Top `k` rows of (provider, model) by cosine similarity to `query`.
  [[nodiscard]] virtual util::Result<std::vector<SearchHit>> search(const std::string& provider,
                                                                    const std::string& model,
                                                                    std::span<const float> query,
                                                                    std::size_t k) = 0;

  // Stores that split work between processes (PostgreSQL claims): gives back every
  // exchange this worker claimed and has not written, so others need not wait for the
  // lease to expire. Call once when a run ends, however it ends. Others: no-op.
  [[nodiscard]] virtual util::Status release_claims() { return {}; }

  // --follow: blocks until the source tables may have changed (a change notification
  // arrived: true) or `timeout` passed (false). A store without notifications just
  // sleeps, which makes the caller poll. After either, the caller starts a new pass
  // over the keyset (a fresh PendingCursor): edited old messages sort before the cursor.
  [[nodiscard]] virtual util::Result<bool> wait_for_changes(std::chrono::milliseconds timeout) {
    std::this_thread::sleep_for(timeout);
    return false;
  }
};

}  // namespace lens::store
