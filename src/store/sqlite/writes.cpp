// Batch writes and run records of the SQLite store; see writes.h.
#include "store/sqlite/writes.h"

#include <fmt/core.h>

#include "store/sqlite/sql.h"
#include "util/redact.h"

namespace lens::store::sqlite {
namespace {

using util::Result;
using util::Status;

Status clear_failure(Statement& clear, const WriteBatch& batch, const std::string& id) {
  clear.reset();
  clear.bind(1, std::string_view(batch.provider));
  clear.bind(2, std::string_view(batch.model));
  clear.bind(3, std::string_view(id));
  return clear.run("clearing failures");
}

Status update_run_progress(Database& db, std::int64_t run_id, const core::RunStats& s) {
  Statement& q = db.cached(
      "run_progress",
      fmt::format(
          "UPDATE embedding_runs SET embedded = ?2, unchanged = ?3, skipped = ?4, failed = ?5, "
          "truncated = ?6, tokens = ?7, requests = ?8, retries = ?9, rate_limited = ?10, fenced = ?11, "
          "heartbeat_at = {} WHERE id = ?1",
          sql::k_now));
  q.reset();
  q.bind(1, run_id);
  q.bind(2, s.embedded);
  q.bind(3, s.unchanged);
  q.bind(4, std::int64_t{0});  // the skipped column predates empty_input failures
  q.bind(5, s.failed);
  q.bind(6, s.truncated);
  q.bind(7, s.tokens);
  q.bind(8, s.requests);
  q.bind(9, s.retries);
  q.bind(10, s.rate_limited);
  q.bind(11, s.fenced);
  return q.run("updating run");
}

// Steps `q` (which returns its id when it wrote) to its end: true when it wrote.
Result<bool> wrote(Statement& q, std::string_view what) {
  auto row = q.step(what);
  if (!row) return std::unexpected(row.error());
  const bool any = *row;
  while (*row) {
    row = q.step(what);
    if (!row) return std::unexpected(row.error());
  }
  return any;
}

// A write that wrote nothing was fenced, unless its message is gone (deleted since it
// was read: skipped, as before fencing).
Result<bool> message_exists(Database& db, const SourceSql& source, const std::string& id) {
  Statement& q = db.cached("message_exists", source.expand("SELECT 1 FROM @rel WHERE @id = ?1"));
  q.reset();
  q.bind(1, std::string_view(id));
  auto row = q.step("reading a message");
  if (!row) return std::unexpected(row.error());
  const bool found = *row;
  q.reset();
  return found;
}

Result<WriteReport> write_in_transaction(Database& db, const SourceSql& source, const WriteBatch& batch) {
  WriteReport report;
  Statement& up = db.cached("upsert", sql::upsert_row(source));
  Statement& clear =
      db.cached("clear_failure",
                "DELETE FROM embedding_failures WHERE provider = ?1 AND model = ?2 AND user_message_id = ?3");
  for (const auto& row : batch.rows) {
    up.reset();
    up.bind(1, std::string_view(batch.provider));
    up.bind(2, std::string_view(batch.model));
    up.bind(3, std::string_view(row.user_message_id));
    up.bind(4, row.assistant_message_id);
    up.bind_blob(5, row.content_sha256.data(), row.content_sha256.size());
    up.bind(6, std::int64_t{row.token_count});
    up.bind(7, std::int64_t{row.truncated ? 1 : 0});
    up.bind(8, static_cast<std::int64_t>(row.embedding.size()));
    up.bind_blob(9, row.embedding.data(), row.embedding.size() * sizeof(float));
    up.bind(10, std::string_view(row.source_version));
    auto w = wrote(up, "writing embeddings");
    up.reset();
    if (!w) return std::unexpected(w.error());
    if (!*w) {
      auto exists = message_exists(db, source, row.user_message_id);
      if (!exists) return std::unexpected(exists.error());
      if (*exists) ++report.fenced_rows;
      continue;
    }
    if (auto s = clear_failure(clear, batch, row.user_message_id); !s) return std::unexpected(s.error());
  }
  Statement& touch = db.cached("touch", sql::touch_row());
  for (const auto& t : batch.touches) {
    touch.reset();
    touch.bind(1, std::string_view(batch.provider));
    touch.bind(2, std::string_view(batch.model));
    touch.bind(3, std::string_view(t.user_message_id));
    touch.bind(4, t.assistant_message_id);
    touch.bind(5, std::string_view(t.source_version));
    if (t.content_sha256)
      touch.bind_blob(6, t.content_sha256->data(), t.content_sha256->size());
    else
      touch.bind(6, std::optional<std::string>());
    auto w = wrote(touch, "refreshing rows");
    touch.reset();
    if (!w) return std::unexpected(w.error());
    if (!*w) {
      ++report.fenced_touches;
      continue;
    }
    if (auto s = clear_failure(clear, batch, t.user_message_id); !s) return std::unexpected(s.error());
  }
  Statement& fail_up = db.cached("failure", sql::upsert_failure(source));
  for (const auto& f : batch.failures) {
    fail_up.reset();
    fail_up.bind(1, std::string_view(batch.provider));
    fail_up.bind(2, std::string_view(batch.model));
    fail_up.bind(3, std::string_view(f.user_message_id));
    fail_up.bind(4, core::to_string(f.reason));
    fail_up.bind(5, std::string_view(f.detail));
    fail_up.bind(6, std::string_view(f.source_version));
    fail_up.bind(7, std::int64_t{core::failure_class(f.reason) == core::FailureClass::transient ? 1 : 0});
    auto w = wrote(fail_up, "recording failures");
    fail_up.reset();
    if (!w) return std::unexpected(w.error());
    if (!*w) {
      auto exists = message_exists(db, source, f.user_message_id);
      if (!exists) return std::unexpected(exists.error());
      if (*exists) ++report.fenced_failures;
    }
  }
  if (batch.run_id > 0) {
    // batch.progress counts every item as written: take the fenced ones out.
    core::RunStats progress = batch.progress;
    progress.embedded -= report.fenced_rows;
    progress.unchanged -= report.fenced_touches;
    progress.failed -= report.fenced_failures;
    progress.fenced += report.fenced();
    if (auto s = update_run_progress(db, batch.run_id, progress); !s) return std::unexpected(s.error());
  }
  return report;
}

}  // namespace

Result<WriteReport> write_once(Database& db, const SourceSql& source, const WriteBatch& batch) {
  if (auto s = db.exec("BEGIN IMMEDIATE"); !s) return std::unexpected(s.error());
  auto report = write_in_transaction(db, source, batch);
  if (!report) {
    (void)db.exec("ROLLBACK");
    return report;
  }
  if (auto s = db.exec("COMMIT"); !s) return std::unexpected(s.error());
  return report;
}

Result<std::int64_t> begin_run(Database& db, const RunRecord& run) {
  Statement& q = db.cached(
      "begin_run", fmt::format("INSERT INTO embedding_runs (provider, model, status, arguments, worker, "
                               "heartbeat_at) VALUES (?1, ?2, 'running', ?3, ?4, {})",
                               sql::k_now));
  q.reset();
  q.bind(1, std::string_view(run.provider));
  q.bind(2, std::string_view(run.model));
  q.bind(3, std::string_view(util::redact(run.arguments)));
  q.bind(4, std::string_view(run.worker));
  if (auto s = q.run("starting run"); !s) return std::unexpected(s.error());
  return db.last_insert_rowid();
}

Status finish_run(Database& db, std::int64_t run_id, core::RunStatus status, const core::RunStats& stats,
                  const std::string& cause) {
  Statement& q =
      db.cached("finish_run", fmt::format("UPDATE embedding_runs SET status = ?2, finished_at = {0}, "
                                          "heartbeat_at = {0}, error = ?3 WHERE id = ?1",
                                          sql::k_now));
  q.reset();
  q.bind(1, run_id);
  q.bind(2, core::to_string(status));
  q.bind(3, cause.empty() ? std::optional<std::string>() : std::optional<std::string>(util::redact(cause)));
  if (auto s = q.run("finishing run"); !s) return s;
  return update_run_progress(db, run_id, stats);
}

}  // namespace lens::store::sqlite
