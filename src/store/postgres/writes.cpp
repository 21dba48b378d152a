// Batch writes and run records of the PostgreSQL store; see writes.h.
#include "store/postgres/writes.h"

#include <fmt/core.h>
#include <algorithm>
#include <unordered_set>

#include "store/postgres/migrations.h"
#include "store/postgres/sql.h"
#include "util/redact.h"
#include "util/sha256.h"
#include "util/utf8.h"

namespace lens::store::postgres {
namespace {

using util::Result;
using util::Status;

// $1 run id, $2..$10 the counters in the column order of embedding_runs, $11 fenced (v3).
Params progress_params(std::int64_t run_id, const core::RunStats& s) {
  Params p;
  p.integer(run_id)
      .integer(s.embedded)
      .integer(s.unchanged)
      .integer(0)  // the skipped column predates empty_input failures
      .integer(s.failed)
      .integer(s.truncated)
      .integer(s.tokens)
      .integer(s.requests)
      .integer(s.retries)
      .integer(s.rate_limited)
      .integer(s.fenced);
  return p;
}

void put_text_field(std::string& buf, std::string_view s) {
  put_u32(buf, static_cast<std::uint32_t>(s.size()));
  buf.append(s);
}

// One lens_stage tuple in binary COPY format: field count, then (length, bytes) per
// field in the table's column order; length -1 for NULL.
void append_stage_tuple(std::string& buf, std::int32_t ord, const core::EmbeddingRow& row) {
  put_u16(buf, 9);
  put_u32(buf, 4);
  put_u32(buf, static_cast<std::uint32_t>(ord));
  put_text_field(buf, row.user_message_id);
  if (row.assistant_message_id)
    put_text_field(buf, *row.assistant_message_id);
  else
    put_u32(buf, 0xFFFFFFFFu);
  put_u32(buf, 32);
  buf.append(reinterpret_cast<const char*>(row.content_sha256.data()), 32);
  put_u32(buf, 4);
  put_u32(buf, static_cast<std::uint32_t>(row.token_count));
  put_u32(buf, 1);
  buf.push_back(row.truncated ? 1 : 0);
  put_u32(buf, 4);
  put_u32(buf, static_cast<std::uint32_t>(row.embedding.size()));
  // Written in place: the array's size is known (float_array_bytes) before its bytes.
  put_u32(buf, static_cast<std::uint32_t>(float_array_bytes(row.embedding.size())));
  put_float_array(buf, row.embedding);
  if (row.source_version.empty())
    put_u32(buf, 0xFFFFFFFFu);
  else
    put_text_field(buf, row.source_version);
}

// Binary COPY into the staging table, streamed in ~1 MiB pieces.
Status stage_with_copy(Connection& conn, const std::vector<core::EmbeddingRow>& rows) {
  bool header = false, trailer = false;
  std::size_t next = 0;
  return conn.copy_in("COPY", "COPY lens_stage FROM STDIN (FORMAT binary)", [&](std::string& buf) {
    if (!header) {
      buf.append("PGCOPY\n\xff\r\n\0", 11);
      put_u32(buf, 0);  // flags
      put_u32(buf, 0);  // header extension length
      header = true;
      return true;
    }
    if (next < rows.size()) {
      append_stage_tuple(buf, static_cast<std::int32_t>(next), rows[next]);
      ++next;
      return true;
    }
    if (!trailer) {
      put_u16(buf, 0xFFFF);
      trailer = true;
      return true;
    }
    return false;
  });
}

// For servers without COPY FROM STDIN: multi-row INSERTs with binary vectors.
Status stage_with_insert(Connection& conn, const std::vector<core::EmbeddingRow>& rows) {
  constexpr std::size_t k_rows_per_statement = 64;
  for (std::size_t start = 0; start < rows.size(); start += k_rows_per_statement) {
    const std::size_t end = std::min(rows.size(), start + k_rows_per_statement);
    std::string sql = "INSERT INTO lens_stage VALUES ";
    Params p;
    for (std::size_t i = start; i < end; ++i) {
      const int b = static_cast<int>((i - start) * 9);
      sql += fmt::format(
          "{}(${}::integer, ${}, ${}, ${}::bytea, ${}::integer, ${}::boolean, ${}::integer, "
          "${}::real[], ${})",
          i == start ? "" : ",", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8, b + 9);
      const auto& row = rows[i];
      std::string array;
      put_float_array(array, row.embedding);
      p.integer(static_cast<std::int64_t>(i))
          .text(row.user_message_id)
          .optional(row.assistant_message_id)
          .binary(std::string(reinterpret_cast<const char*>(row.content_sha256.data()), 32))
          .integer(row.token_count)
          .boolean(row.truncated)
          .integer(static_cast<std::int64_t>(row.embedding.size()))
          .binary(std::move(array));
      if (row.source_version.empty())
        p.null();
      else
        p.text(row.source_version);
    }
    if (auto r = conn.exec("staging rows", sql, p); !r) return std::unexpected(r.error());
  }
  return {};
}

// The (id, n) result of upsert_staged and upsert_failures: the written ids into `written`,
// returns how many of the n considered were not written (fenced).
std::int64_t count_fenced(const Rows& r, IdList* written) {
  if (r.size() == 0) return 0;
  std::int64_t n = r.integer(0, 1), wrote = 0;
  for (int i = 0; i < r.size(); ++i) {
    if (r.is_null(i, 0)) continue;
    ++wrote;
    if (written) written->emplace_back(r.text(i, 0));
  }
  return std::max<std::int64_t>(0, n - wrote);
}

Result<std::int64_t> upsert_failures(Connection& conn, const SourceSql& source, const std::string& provider,
                                     const std::string& model, const std::optional<std::string>& worker,
                                     const std::vector<core::Failure>& failures) {
  // Last word per id: ON CONFLICT may not touch a row twice in one statement.
  std::vector<const core::Failure*> unique;
  std::unordered_set<std::string> seen;
  for (auto it = failures.rbegin(); it != failures.rend(); ++it)
    if (seen.insert(it->user_message_id).second) unique.push_back(&*it);
  IdList ids, reasons, details, versions, transient;
  for (const auto* f : unique) {
    ids.emplace_back(f->user_message_id);
    reasons.emplace_back(std::string(core::to_string(f->reason)));
    transient.emplace_back(core::failure_class(f->reason) == core::FailureClass::transient ? "true"
                                                                                           : "false");
    details.emplace_back(util::repair_utf8(f->detail));
    versions.emplace_back(f->source_version.empty() ? std::nullopt
                                                    : std::optional<std::string>(f->source_version));
  }
  auto r = conn.exec("recording failures", sql::upsert_failures(source),
                     Params()
                         .text(provider)
                         .text(model)
                         .optional(worker)
                         .text(array_literal(ids))
                         .text(array_literal(reasons))
                         .text(array_literal(details))
                         .text(array_literal(versions))
                         .text(array_literal(transient)));
  if (!r) return std::unexpected(r.error());
  return count_fenced(*r, nullptr);
}

}  // namespace

Status BatchWriter::ensure_stage(Connection& conn) {
  if (stage_generation_ == conn.generation()) return {};
  // ON COMMIT DELETE ROWS: every batch starts empty without a DELETE of ours.
  // STORAGE EXTERNAL: no pglz attempt on vectors that will not compress.
  auto s = conn.exec_simple(
      "creating the staging table",
      "CREATE TEMP TABLE IF NOT EXISTS lens_stage (ord integer, user_message_id text, "
      "assistant_message_id text, content_sha256 bytea, token_count integer, truncated boolean, "
      "dimensions integer, embedding real[], source_version text) ON COMMIT DELETE ROWS; "
      "ALTER TABLE lens_stage ALTER COLUMN embedding SET STORAGE EXTERNAL");
  if (!s) return s;
  stage_generation_ = conn.generation();
  return {};
}

Result<WriteReport> BatchWriter::write_once(Connection& conn, const WriteBatch& batch,
                                            const std::string& embedding_type) {
  if (!batch.rows.empty()) {
    if (auto s = ensure_stage(conn); !s) return std::unexpected(s.error());
  }
  if (auto s = conn.exec_simple("writing a batch", "BEGIN"); !s) return std::unexpected(s.error());
  auto report = write_in_transaction(conn, batch, embedding_type);
  if (!report) {
    conn.rollback();
    return report;
  }
  // An error here leaves the outcome unknown; the connection is gone or the server said
  // no. Either way the redo is safe: every statement above is an upsert.
  if (auto s = conn.exec_simple("committing a batch", "COMMIT"); !s) return std::unexpected(s.error());
  return report;
}

Result<WriteReport> BatchWriter::write_in_transaction(Connection& conn, const WriteBatch& batch,
                                                      const std::string& embedding_type) {
  WriteReport report;
  // This worker's name for the claim fence; none without claims.
  const std::optional<std::string> worker =
      claims_ ? std::optional<std::string>(claims_->worker()) : std::nullopt;
  IdList written;  // ids whose failures end with this batch
  IdList handled;  // ids whose claims end with this batch, fenced or not
  if (!batch.rows.empty()) {
    auto staged = use_copy_ ? stage_with_copy(conn, batch.rows) : stage_with_insert(conn, batch.rows);
    if (!staged) return std::unexpected(staged.error());
    const std::string cast = is_pgvector(embedding_type) ? "::" + embedding_type : "";
    auto r = conn.exec("writing embeddings", sql::upsert_staged(source_, cast),
                       Params().text(batch.provider).text(batch.model).optional(worker));
    if (!r) return std::unexpected(r.error());
    report.fenced_rows = count_fenced(*r, &written);
    for (const auto& row : batch.rows)
      handled.emplace_back(row.user_message_id);
  }
  if (!batch.touches.empty()) {
    IdList ids, aids, versions, hashes;
    std::unordered_set<std::string> distinct;
    for (const auto& t : batch.touches) {
      ids.emplace_back(t.user_message_id);
      aids.emplace_back(t.assistant_message_id);
      versions.emplace_back(t.source_version);
      hashes.emplace_back(t.content_sha256 ? std::optional<std::string>(util::to_hex(*t.content_sha256))
                                           : std::nullopt);
      handled.emplace_back(t.user_message_id);
      distinct.insert(t.user_message_id);
    }
    auto r = conn.exec("refreshing rows", sql::touch_rows(source_),
                       Params()
                           .text(batch.provider)
                           .text(batch.model)
                           .text(array_literal(ids))
                           .text(array_literal(aids))
                           .text(array_literal(versions))
                           .text(array_literal(hashes)));
    if (!r) return std::unexpected(r.error());
    std::unordered_set<std::string> touched;
    for (int i = 0; i < r->size(); ++i)
      touched.insert(r->text(i, 0));
    for (const auto& id : touched)
      written.emplace_back(id);
    report.fenced_touches =
        static_cast<std::int64_t>(distinct.size() - std::min(distinct.size(), touched.size()));
  }
  if (!written.empty()) {
    auto r = conn.exec("clearing failures",
                       fmt::format("DELETE FROM embedding_failures WHERE provider = $1 AND model = $2 "
                                   "AND user_message_id = ANY($3::{}[])",
                                   source_.key_type()),
                       Params().text(batch.provider).text(batch.model).text(array_literal(written)));
    if (!r) return std::unexpected(r.error());
  }
  if (!batch.failures.empty()) {
    auto fenced = upsert_failures(conn, source_, batch.provider, batch.model, worker, batch.failures);
    if (!fenced) return std::unexpected(fenced.error());
    report.fenced_failures = *fenced;
    for (const auto& f : batch.failures)
      handled.emplace_back(f.user_message_id);
  }
  if (claims_ && !handled.empty()) {
    if (auto s = claims_->drop(conn, batch.provider, batch.model, handled); !s)
      return std::unexpected(s.error());
  }
  if (batch.run_id > 0) {
    // batch.progress counts every item as written: take the fenced ones out.
    core::RunStats progress = batch.progress;
    progress.embedded -= report.fenced_rows;
    progress.unchanged -= report.fenced_touches;
    progress.failed -= report.fenced_failures;
    progress.fenced += report.fenced();
    auto r = conn.exec("updating run",
                       "UPDATE embedding_runs SET embedded = $2, unchanged = $3, skipped = $4, failed = $5, "
                       "truncated = $6, tokens = $7, requests = $8, retries = $9, rate_limited = $10, "
                       "fenced = $11, heartbeat_at = now() WHERE id = $1",
                       progress_params(batch.run_id, progress));
    if (!r) return std::unexpected(r.error());
  }
  return report;
}

Result<std::int64_t> begin_run(Connection& conn, const RunRecord& run) {
  auto r = conn.exec(
      "starting run",
      "INSERT INTO embedding_runs (provider, model, status, arguments, worker, heartbeat_at) "
      "VALUES ($1, $2, 'running', $3, $4, now()) RETURNING id",
      Params().text(run.provider).text(run.model).text(util::redact(run.arguments)).text(run.worker));
  if (!r) return std::unexpected(r.error());
  return r->integer(0, 0);
}

Status finish_run(Connection& conn, std::int64_t run_id, core::RunStatus status, const core::RunStats& stats,
                  const std::string& cause) {
  auto p = progress_params(run_id, stats);
  p.text(core::to_string(status));
  if (cause.empty())
    p.null();
  else
    p.text(util::repair_utf8(util::redact(cause)));
  auto r = conn.exec("finishing run",
                     "UPDATE embedding_runs SET embedded = $2, unchanged = $3, skipped = $4, failed = $5, "
                     "truncated = $6, tokens = $7, requests = $8, retries = $9, rate_limited = $10, "
                     "fenced = $11, heartbeat_at = now(), finished_at = now(), status = $12, error = $13 "
                     "WHERE id = $1",
                     p);
  if (!r) return std::unexpected(r.error());
  return {};
}

}  // namespace lens::store::postgres
