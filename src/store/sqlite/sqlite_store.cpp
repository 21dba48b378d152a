// SQLite Store: WAL mode, prepared statements, one transaction per batch.
#include "store/sqlite/sqlite_store.h"

#include <sqlite3.h>

#include <fmt/core.h>
#include <algorithm>
#include <bit>
#include <cstring>
#include <thread>
#include <unordered_map>

#include "store/sqlite/schema.sql.h"
#include "store/vector_math.h"
#include "util/utf8.h"

namespace lens::store {
namespace {

static_assert(std::endian::native == std::endian::little,
              "vectors are stored as little-endian float32; add a byte swap for this target");

using util::ErrorCode;
using util::fail;
using util::Result;
using util::Status;

constexpr int k_schema_version = 1;
constexpr const char* k_now = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

// SQLITE_BUSY/LOCKED and I/O hiccups are worth a retry; the rest will fail again.
ErrorCode classify(int rc) {
  switch (rc & 0xFF) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
      return ErrorCode::transient;
    case SQLITE_CANTOPEN:
      return ErrorCode::not_found;
    default:
      return ErrorCode::permanent;
  }
}

class Statement {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  Status prepare(sqlite3* db, const std::string& sql) {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
    const int rc = sqlite3_prepare_v3(db, sql.c_str(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
    if (rc != SQLITE_OK) {
      return fail(classify(rc), fmt::format("sqlite: cannot prepare statement: {}", sqlite3_errmsg(db)));
    }
    return {};
  }
  sqlite3_stmt* get() const { return stmt_; }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  void bind(int i, std::string_view text) {
    sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  void bind(int i, const std::optional<std::string>& text) {
    if (text)
      bind(i, std::string_view(*text));
    else
      sqlite3_bind_null(stmt_, i);
  }
  void bind(int i, std::int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void bind_blob(int i, const void* data, std::size_t size) {
    sqlite3_bind_blob64(stmt_, i, data, size, SQLITE_STATIC);
  }
  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
  }
  std::optional<std::string> optional_text(int col) const {
    if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return std::nullopt;
    return text(col);
  }
  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  double real(int col) const { return sqlite3_column_double(stmt_, col); }
  std::span<const std::uint8_t> blob(int col) const {
    const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt_, col));
    return {p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))};
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

// Version of the exchange as SQL: newest of the two messages' edit/creation times.
constexpr const char* k_source_version_sql =
    "CASE WHEN a.id IS NULL THEN coalesce(p.updated_at, p.created_at) "
    "ELSE max(coalesce(p.updated_at, p.created_at), coalesce(a.updated_at, a.created_at)) END";

// The answer: the first user/assistant message after p in its conversation, if assistant.
constexpr const char* k_answer_join_sql =
    "LEFT JOIN messages a ON a.id = (SELECT n.id FROM messages n "
    "  WHERE n.conversation_id = p.conversation_id AND n.role IN ('user','assistant') "
    "    AND (n.created_at, n.id) > (p.created_at, p.id) "
    "  ORDER BY n.created_at, n.id LIMIT 1) AND a.role = 'assistant' ";

// Non-blank in SQL terms: ASCII white space only; Unicode-only blanks are caught later
// by util::is_blank and recorded as empty_input.
constexpr const char* k_non_blank_sql =
    "p.content IS NOT NULL AND trim(p.content, ' ' || char(9,10,11,12,13)) <> ''";

std::string needs_work_sql() {
  return fmt::format(
      "(?4 OR e.user_message_id IS NULL OR e.assistant_message_id IS NOT a.id "
      "  OR e.source_version IS NOT ({0})) "
      "AND (?5 OR NOT EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = ?2 "
      "  AND f.model = ?3 AND f.user_message_id = p.id AND f.source_version IS ({0})))",
      k_source_version_sql);
}

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  ~SqliteStore() override {
    statements_.clear();
    sqlite3_close_v2(db_);
  }

  Status configure() {
    // WAL: readers and the writer do not block each other. synchronous=NORMAL keeps
    // every commit safe against a process crash (kill -9); only an OS crash may lose
    // the last commits, which the idempotent redo then restores.
    for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL",
                               "PRAGMA foreign_keys=ON", "PRAGMA temp_store=MEMORY",
                               // A bounded 64 MiB page cache and checkpoints every ~40 MiB
                               // of WAL. No mmap: mapped pages would count in RSS and grow
                               // with the database.
                               "PRAGMA cache_size=-65536", "PRAGMA wal_autocheckpoint=10000"}) {
      if (auto s = exec(pragma); !s) return s;
    }
    sqlite3_busy_timeout(db_, 30'000);
    return {};
  }

  Status migrate() override {
    if (auto s = exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                      "applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))");
        !s)
      return s;
    if (auto s = exec("BEGIN IMMEDIATE"); !s) return s;
    auto version = scalar_int("SELECT coalesce(max(version), 0) FROM schema_migrations");
    if (!version) {
      (void)exec("ROLLBACK");
      return std::unexpected(version.error());
    }
    if (*version > k_schema_version) {
      (void)exec("ROLLBACK");
      return fail(ErrorCode::configuration,
                  fmt::format("sqlite: {} has schema version {}, newer than this lens-embed "
                              "understands ({}); upgrade lens-embed",
                              path_, *version, k_schema_version));
    }
    if (*version < 1) {
      if (auto s = exec(sqlite_schema::k_v1); !s) {
        (void)exec("ROLLBACK");
        return s;
      }
      if (auto s = exec("INSERT INTO schema_migrations (version) VALUES (1)"); !s) {
        (void)exec("ROLLBACK");
        return s;
      }
    }
    return exec("COMMIT");
  }

  Result<PendingPage> next_pending(const WorkScope& scope, PendingCursor& cursor,
                                   std::size_t max_items) override {
    // The bounds must stay plain row-value comparisons (no "OR first page" trick): only
    // then does SQLite seek the index instead of scanning it from the start every page.
    // A fresh cursor is ('', ''), below every real created_at.
    // Step 1: the key window, read from the partial index alone. Bounding the scan
    // (not the result) gives every page the same cost however much is already done.
    Statement& window = stmt("window",
                             "SELECT created_at, id FROM messages WHERE role = 'user' AND "
                             "(created_at, id) > (?1, ?2) ORDER BY created_at, id LIMIT ?4");
    window.reset();
    window.bind(1, std::string_view(cursor.created_at));
    window.bind(2, std::string_view(cursor.id));
    window.bind(4, static_cast<std::int64_t>(max_items));
    std::size_t scanned = 0;
    std::string last_created, last_id;
    int rc;
    while ((rc = sqlite3_step(window.get())) == SQLITE_ROW) {
      ++scanned;
      last_created = window.text(0);
      last_id = window.text(1);
    }
    if (rc != SQLITE_DONE) return error_result<PendingPage>("reading pending keys", rc);
    PendingPage page;
    page.exhausted = scanned < max_items;
    if (scanned == 0) return page;

    // Step 2: the exchanges of that window that need work.
    Statement& q = stmt(
        "pending",
        fmt::format(
            "SELECT p.id, p.conversation_id, p.created_at, p.content, a.id, a.content, ({0}), "
            "       e.content_sha256 "
            "FROM messages p {1}"
            "LEFT JOIN message_embeddings e ON e.provider = ?2 AND e.model = ?3 AND e.user_message_id = p.id "
            "WHERE p.role = 'user' AND (p.created_at, p.id) > (?1, ?8) "
            "  AND (p.created_at, p.id) <= (?6, ?7) AND {2} AND {3} "
            "ORDER BY p.created_at, p.id",
            k_source_version_sql, k_answer_join_sql, k_non_blank_sql, needs_work_sql()));
    q.reset();
    q.bind(1, std::string_view(cursor.created_at));
    q.bind(2, std::string_view(scope.provider));
    q.bind(3, std::string_view(scope.model));
    q.bind(4, std::int64_t{scope.force ? 1 : 0});
    q.bind(5, std::int64_t{scope.retry_failures ? 1 : 0});
    q.bind(6, std::string_view(last_created));
    q.bind(7, std::string_view(last_id));
    q.bind(8, std::string_view(cursor.id));
    while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
      core::Exchange ex;
      ex.user_message_id = q.text(0);
      ex.user_content = q.text(3);
      ex.assistant_message_id = q.optional_text(4);
      if (ex.assistant_message_id) ex.assistant_content = q.text(5);
      ex.source_version = q.text(6);
      if (auto sha = q.blob(7); sha.size() == 32) {
        util::Sha256 digest;
        std::memcpy(digest.data(), sha.data(), 32);
        ex.stored_sha256 = digest;
      }
      page.items.push_back(std::move(ex));
    }
    if (rc != SQLITE_DONE) return error_result<PendingPage>("reading pending exchanges", rc);
    cursor.started = true;
    cursor.created_at = std::move(last_created);
    cursor.id = std::move(last_id);
    return page;
  }

  Status write_batch(const WriteBatch& batch) override {
    if (auto s = exec("BEGIN IMMEDIATE"); !s) return s;
    auto s = write_batch_in_transaction(batch);
    if (!s) {
      (void)exec("ROLLBACK");
      return s;
    }
    return exec("COMMIT");
  }

  Result<std::int64_t> begin_run(const RunRecord& run) override {
    Statement& q = stmt(
        "begin_run",
        fmt::format("INSERT INTO embedding_runs (provider, model, status, arguments, worker, heartbeat_at) "
                    "VALUES (?1, ?2, 'running', ?3, ?4, {})",
                    k_now));
    q.reset();
    q.bind(1, std::string_view(run.provider));
    q.bind(2, std::string_view(run.model));
    q.bind(3, std::string_view(run.arguments));
    q.bind(4, std::string_view(run.worker));
    if (const int rc = step_done(q); rc != SQLITE_DONE) return error_result<std::int64_t>("starting run", rc);
    return sqlite3_last_insert_rowid(db_);
  }

  Status finish_run(std::int64_t run_id, core::RunStatus status, const core::RunStats& stats) override {
    Statement& q =
        stmt("finish_run",
             fmt::format(
                 "UPDATE embedding_runs SET status = ?2, finished_at = {0}, heartbeat_at = {0} WHERE id = ?1",
                 k_now));
    q.reset();
    q.bind(1, run_id);
    q.bind(2, core::to_string(status));
    if (const int rc = step_done(q); rc != SQLITE_DONE) return error_status("finishing run", rc);
    return update_run_progress(run_id, stats);
  }

  Result<std::int64_t> count_pending(const WorkScope& scope) override {
    // Cheap by design (it only sizes the progress bar): exchanges without a row (or every
    // eligible one with force), from the covering indexes; stale rows are not counted.
    Statement& q = stmt(
        "count_pending",
        fmt::format("SELECT count(*) FROM messages p WHERE p.role = 'user' AND {} AND (?3 OR NOT EXISTS ("
                    "SELECT 1 FROM message_embeddings e WHERE e.provider = ?1 AND e.model = ?2 AND "
                    "e.user_message_id = p.id)) "
                    "AND (?4 OR NOT EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = ?1 AND "
                    "f.model = ?2 "
                    "AND f.user_message_id = p.id))",
                    k_non_blank_sql));
    q.reset();
    q.bind(1, std::string_view(scope.provider));
    q.bind(2, std::string_view(scope.model));
    q.bind(3, std::int64_t{scope.force ? 1 : 0});
    q.bind(4, std::int64_t{scope.retry_failures ? 1 : 0});
    const int rc = sqlite3_step(q.get());
    if (rc != SQLITE_ROW) return error_result<std::int64_t>("counting pending work", rc);
    const std::int64_t n = q.integer(0);
    q.reset();
    return n;
  }

  Result<StatusReport> status(std::size_t recent_runs) override {
    StatusReport report;
    auto eligible = scalar_int(
        fmt::format("SELECT count(*) FROM messages p WHERE p.role = 'user' AND {}", k_non_blank_sql));
    if (!eligible) return std::unexpected(eligible.error());
    report.eligible = *eligible;

    Statement models;
    if (auto s = models.prepare(db_,
                                "SELECT provider, model FROM message_embeddings GROUP BY provider, model "
                                "UNION SELECT provider, model FROM embedding_failures "
                                "UNION SELECT provider, model FROM embedding_runs ORDER BY 1, 2");
        !s)
      return std::unexpected(s.error());
    int rc;
    while ((rc = sqlite3_step(models.get())) == SQLITE_ROW) {
      ModelStatus m;
      m.provider = models.text(0);
      m.model = models.text(1);
      report.models.push_back(std::move(m));
    }
    if (rc != SQLITE_DONE) return error_result<StatusReport>("reading status", rc);
    for (auto& m : report.models) {
      if (auto s = fill_model_status(m); !s) return std::unexpected(s.error());
    }

    Statement runs;
    if (auto s = runs.prepare(
            db_,
            "SELECT id, provider, model, started_at, coalesce(finished_at, ''), status, embedded, "
            "unchanged, skipped, failed, truncated, tokens, requests, retries, rate_limited, "
            "(julianday(coalesce(finished_at, heartbeat_at, started_at)) - julianday(started_at)) * 86400.0 "
            "FROM embedding_runs ORDER BY id DESC LIMIT ?1");
        !s)
      return std::unexpected(s.error());
    runs.bind(1, static_cast<std::int64_t>(recent_runs));
    while ((rc = sqlite3_step(runs.get())) == SQLITE_ROW) {
      RunSummary r;
      r.id = runs.integer(0);
      r.provider = runs.text(1);
      r.model = runs.text(2);
      r.started_at = runs.text(3);
      r.finished_at = runs.text(4);
      r.status = core::parse_run_status(runs.text(5)).value_or(core::RunStatus::failed);
      r.stats.embedded = runs.integer(6);
      r.stats.unchanged = runs.integer(7);
      r.stats.failed = runs.integer(9);
      r.stats.truncated = runs.integer(10);
      r.stats.tokens = runs.integer(11);
      r.stats.requests = runs.integer(12);
      r.stats.retries = runs.integer(13);
      r.stats.rate_limited = runs.integer(14);
      r.duration_seconds = runs.real(15);
      report.recent_runs.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) return error_result<StatusReport>("reading runs", rc);
    return report;
  }

  Result<std::vector<FailureRecord>> failures(const std::string& provider,
                                              const std::string& model) override {
    Statement q;
    if (auto s = q.prepare(db_,
                           "SELECT provider, model, user_message_id, reason, coalesce(detail, ''), attempts, "
                           "first_failed_at, last_failed_at FROM embedding_failures "
                           "WHERE (?1 = '' OR provider = ?1) AND (?2 = '' OR model = ?2) "
                           "ORDER BY provider, model, last_failed_at, user_message_id");
        !s)
      return std::unexpected(s.error());
    q.bind(1, std::string_view(provider));
    q.bind(2, std::string_view(model));
    std::vector<FailureRecord> out;
    int rc;
    while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
      FailureRecord f;
      f.provider = q.text(0);
      f.model = q.text(1);
      f.user_message_id = q.text(2);
      const std::string word = q.text(3);
      const auto reason = core::parse_failure_reason(word);
      if (!reason)
        return fail(ErrorCode::internal,
                    fmt::format("sqlite: unknown failure reason \"{}\" in embedding_failures", word));
      f.reason = *reason;
      f.detail = q.text(4);
      f.attempts = q.integer(5);
      f.first_failed_at = q.text(6);
      f.last_failed_at = q.text(7);
      out.push_back(std::move(f));
    }
    if (rc != SQLITE_DONE) return error_result<std::vector<FailureRecord>>("reading failures", rc);
    return out;
  }

  Result<std::vector<SearchHit>> search(const std::string& provider, const std::string& model,
                                        std::span<const float> query, std::size_t k) override {
    // Exact scan, parallel over rowid ranges: each thread reads its range through its own
    // read-only connection (WAL lets readers run side by side) and keeps its own top k.
    std::int64_t lo = 0, hi = -1;
    {
      Statement range;
      if (auto s = range.prepare(db_,
                                 "SELECT min(rowid), max(rowid) FROM message_embeddings "
                                 "WHERE provider = ?1 AND model = ?2");
          !s)
        return std::unexpected(s.error());
      range.bind(1, std::string_view(provider));
      range.bind(2, std::string_view(model));
      if (sqlite3_step(range.get()) == SQLITE_ROW && sqlite3_column_type(range.get(), 0) != SQLITE_NULL) {
        lo = range.integer(0);
        hi = range.integer(1);
      }
    }
    const float query_norm = l2_norm(query);
    const auto threads =
        static_cast<std::int64_t>(std::clamp<unsigned>(std::thread::hardware_concurrency(), 1, 8));
    const std::int64_t span = hi >= lo ? (hi - lo) / threads + 1 : 0;
    std::vector<TopK> partial(static_cast<std::size_t>(threads), TopK(k));
    std::vector<std::string> errors(static_cast<std::size_t>(threads));
    std::vector<std::thread> pool;
    for (std::int64_t t = 0; t < threads && span > 0; ++t) {
      pool.emplace_back([&, t] {
        sqlite3* conn = nullptr;
        if (sqlite3_open_v2(path_.c_str(), &conn, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr) !=
            SQLITE_OK) {
          errors[static_cast<std::size_t>(t)] = conn ? sqlite3_errmsg(conn) : "out of memory";
          sqlite3_close_v2(conn);
          return;
        }
        sqlite3_busy_timeout(conn, 30'000);
        scan_range(conn, provider, model, query, query_norm, lo + t * span,
                   std::min(hi, lo + (t + 1) * span - 1), partial[static_cast<std::size_t>(t)],
                   errors[static_cast<std::size_t>(t)]);
        sqlite3_close_v2(conn);
      });
    }
    for (auto& th : pool)
      th.join();
    for (const auto& e : errors) {
      if (!e.empty())
        return fail(ErrorCode::transient, fmt::format("sqlite {}: scanning vectors: {}", path_, e));
    }
    TopK top(k);
    for (auto& p : partial) {
      for (const auto& [rowid, score] : p.sorted())
        top.offer(rowid, score);
    }

    Statement detail;
    if (auto s = detail.prepare(
            db_,
            "SELECT e.user_message_id, e.assistant_message_id, m.conversation_id, m.created_at, "
            "substr(m.content, 1, 400) FROM message_embeddings e JOIN messages m ON m.id = e.user_message_id "
            "WHERE e.rowid = ?1");
        !s)
      return std::unexpected(s.error());
    std::vector<SearchHit> hits;
    for (const auto& [rowid, score] : top.sorted()) {
      detail.reset();
      detail.bind(1, rowid);
      if (sqlite3_step(detail.get()) != SQLITE_ROW) continue;
      SearchHit h;
      h.user_message_id = detail.text(0);
      h.assistant_message_id = detail.optional_text(1);
      h.conversation_id = detail.text(2);
      h.created_at = detail.text(3);
      h.snippet = util::repair_utf8(detail.text(4));
      h.score = score;
      hits.push_back(std::move(h));
    }
    return hits;
  }

 private:
  // One thread's share of a search: rows of (provider, model) with rowid in [from, to].
  static void scan_range(sqlite3* conn, const std::string& provider, const std::string& model,
                         std::span<const float> query, float query_norm, std::int64_t from, std::int64_t to,
                         TopK& top, std::string& error) {
    Statement q;
    if (auto s = q.prepare(conn,
                           "SELECT rowid, embedding FROM message_embeddings WHERE rowid BETWEEN ?3 AND ?4 "
                           "AND provider = ?1 AND model = ?2");
        !s) {
      error = s.error().message;
      return;
    }
    q.bind(1, std::string_view(provider));
    q.bind(2, std::string_view(model));
    q.bind(3, from);
    q.bind(4, to);
    int rc;
    while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
      const auto bytes = q.blob(1);
      if (bytes.size() != query.size() * sizeof(float)) continue;  // other dimensions
      top.offer(q.integer(0), cosine_from_bytes(query, query_norm, bytes.data()));
    }
    if (rc != SQLITE_DONE) error = sqlite3_errmsg(conn);
  }

  Status write_batch_in_transaction(const WriteBatch& batch) {
    // INSERT ... SELECT ... WHERE EXISTS: a message deleted since it was read is skipped
    // instead of failing the whole batch on the foreign key.
    Statement& up = stmt(
        "upsert",
        fmt::format("INSERT INTO message_embeddings (provider, model, user_message_id, assistant_message_id, "
                    "  content_sha256, token_count, truncated, dimensions, embedding, source_version) "
                    "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 WHERE EXISTS (SELECT 1 FROM messages "
                    "WHERE id = ?3) "
                    "ON CONFLICT (provider, model, user_message_id) DO UPDATE SET "
                    "  assistant_message_id = excluded.assistant_message_id, content_sha256 = "
                    "excluded.content_sha256, "
                    "  token_count = excluded.token_count, truncated = excluded.truncated, "
                    "  dimensions = excluded.dimensions, embedding = excluded.embedding, "
                    "  source_version = excluded.source_version, updated_at = {}",
                    k_now));
    Statement& clear =
        stmt("clear_failure",
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
      if (const int rc = step_done(up); rc != SQLITE_DONE) return error_status("writing embeddings", rc);
      if (auto s = clear_failure(clear, batch, row.user_message_id); !s) return s;
    }
    Statement& touch = stmt(
        "touch",
        fmt::format(
            "UPDATE message_embeddings SET assistant_message_id = ?4, source_version = ?5, updated_at = {} "
            "WHERE provider = ?1 AND model = ?2 AND user_message_id = ?3",
            k_now));
    for (const auto& t : batch.touches) {
      touch.reset();
      touch.bind(1, std::string_view(batch.provider));
      touch.bind(2, std::string_view(batch.model));
      touch.bind(3, std::string_view(t.user_message_id));
      touch.bind(4, t.assistant_message_id);
      touch.bind(5, std::string_view(t.source_version));
      if (const int rc = step_done(touch); rc != SQLITE_DONE) return error_status("refreshing rows", rc);
      if (auto s = clear_failure(clear, batch, t.user_message_id); !s) return s;
    }
    Statement& fail_up = stmt(
        "failure",
        fmt::format(
            "INSERT INTO embedding_failures (provider, model, user_message_id, reason, detail, "
            "source_version) "
            "SELECT ?1, ?2, ?3, ?4, ?5, ?6 "
            "WHERE EXISTS (SELECT 1 FROM messages WHERE id = ?3) "
            "ON CONFLICT (provider, model, user_message_id) DO UPDATE SET reason = excluded.reason, "
            "  detail = excluded.detail, source_version = ?6, attempts = attempts + 1, last_failed_at = {}",
            k_now));
    for (const auto& f : batch.failures) {
      fail_up.reset();
      fail_up.bind(1, std::string_view(batch.provider));
      fail_up.bind(2, std::string_view(batch.model));
      fail_up.bind(3, std::string_view(f.user_message_id));
      fail_up.bind(4, core::to_string(f.reason));
      fail_up.bind(5, std::string_view(f.detail));
      fail_up.bind(6, std::string_view(f.source_version));
      if (const int rc = step_done(fail_up); rc != SQLITE_DONE) return error_status("recording failures", rc);
    }
    if (batch.run_id > 0) return update_run_progress(batch.run_id, batch.progress);
    return {};
  }

  Status clear_failure(Statement& clear, const WriteBatch& batch, const std::string& id) {
    clear.reset();
    clear.bind(1, std::string_view(batch.provider));
    clear.bind(2, std::string_view(batch.model));
    clear.bind(3, std::string_view(id));
    if (const int rc = step_done(clear); rc != SQLITE_DONE) return error_status("clearing failures", rc);
    return {};
  }

  Status update_run_progress(std::int64_t run_id, const core::RunStats& s) {
    Statement& q = stmt(
        "run_progress",
        fmt::format(
            "UPDATE embedding_runs SET embedded = ?2, unchanged = ?3, skipped = ?4, failed = ?5, "
            "truncated = ?6, tokens = ?7, requests = ?8, retries = ?9, rate_limited = ?10, heartbeat_at = {} "
            "WHERE id = ?1",
            k_now));
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
    if (const int rc = step_done(q); rc != SQLITE_DONE) return error_status("updating run", rc);
    return {};
  }

  Status fill_model_status(ModelStatus& m) {
    auto count = [&](const std::string& sql) -> Result<std::int64_t> {
      Statement q;
      if (auto s = q.prepare(db_, sql); !s) return std::unexpected(s.error());
      q.bind(1, std::string_view(m.provider));
      q.bind(2, std::string_view(m.model));
      const int rc = sqlite3_step(q.get());
      if (rc != SQLITE_ROW) return error_result<std::int64_t>("reading status", rc);
      return q.integer(0);
    };
    auto embedded = count("SELECT count(*) FROM message_embeddings WHERE provider = ?1 AND model = ?2");
    if (!embedded) return std::unexpected(embedded.error());
    m.embedded = *embedded;
    auto pending = count(fmt::format(
        "SELECT count(*) FROM messages p WHERE p.role = 'user' AND {} AND NOT EXISTS "
        "(SELECT 1 FROM message_embeddings e WHERE e.provider = ?1 AND e.model = ?2 AND e.user_message_id = "
        "p.id) "
        "AND NOT EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = ?1 AND f.model = ?2 "
        "AND f.user_message_id = p.id)",
        k_non_blank_sql));
    if (!pending) return std::unexpected(pending.error());
    m.pending = *pending;
    auto stale = count(fmt::format(
        "SELECT count(*) FROM message_embeddings e JOIN messages p ON p.id = e.user_message_id {} "
        "WHERE e.provider = ?1 AND e.model = ?2 AND (e.assistant_message_id IS NOT a.id "
        "OR e.source_version IS NOT ({}))",
        k_answer_join_sql, k_source_version_sql));
    if (!stale) return std::unexpected(stale.error());
    m.stale = *stale;
    Statement q;
    if (auto s =
            q.prepare(db_,
                      "SELECT reason, count(*) FROM embedding_failures WHERE provider = ?1 AND model = ?2 "
                      "GROUP BY reason ORDER BY 2 DESC, 1");
        !s)
      return s;
    q.bind(1, std::string_view(m.provider));
    q.bind(2, std::string_view(m.model));
    int rc;
    while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
      m.failures_by_reason.emplace_back(q.text(0), q.integer(1));
      m.failed += q.integer(1);
    }
    if (rc != SQLITE_DONE) return error_status("reading failures", rc);
    return {};
  }

  Statement& stmt(const std::string& key, const std::string& sql) {
    auto& slot = statements_[key];
    if (!slot) {
      slot = std::make_unique<Statement>();
      // A prepare failure leaves a null statement; sqlite3_step(NULL) returns MISUSE,
      // which the caller reports with the connection's message.
      (void)slot->prepare(db_, sql);
    }
    return *slot;
  }

  int step_done(Statement& q) {
    const int rc = sqlite3_step(q.get());
    sqlite3_reset(q.get());
    return rc;
  }

  Status exec(const std::string& sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    if (rc == SQLITE_OK) return {};
    std::string message = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    return fail(classify(rc), fmt::format("sqlite {}: {}", path_, message));
  }

  Result<std::int64_t> scalar_int(const std::string& sql) {
    Statement q;
    if (auto s = q.prepare(db_, sql); !s) return std::unexpected(s.error());
    const int rc = sqlite3_step(q.get());
    if (rc != SQLITE_ROW) return error_result<std::int64_t>("query", rc);
    return q.integer(0);
  }

  util::Error error(std::string_view what, int rc) const {
    return util::Error{classify(rc), fmt::format("sqlite {}: {}: {}", path_, what, sqlite3_errmsg(db_))};
  }
  Status error_status(std::string_view what, int rc) const { return std::unexpected(error(what, rc)); }
  template <typename T>
  Result<T> error_result(std::string_view what, int rc) const {
    return std::unexpected(error(what, rc));
  }

  sqlite3* db_;
  std::string path_;
  std::unordered_map<std::string, std::unique_ptr<Statement>> statements_;
};

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    return fail(classify(rc), fmt::format("sqlite: cannot open {}: {}", path, message));
  }
  auto store = std::make_unique<SqliteStore>(db, path);
  if (auto s = store->configure(); !s) return std::unexpected(s.error());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace lens::store
