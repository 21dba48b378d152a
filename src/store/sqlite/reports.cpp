// Status, failures and search of the SQLite store; see reports.h.
#include "store/sqlite/reports.h"

#include <fmt/core.h>
#include <algorithm>
#include <bit>
#include <cmath>
#include <map>
#include <thread>

#include "store/shared_sql.h"
#include "store/sqlite/sql.h"
#include "store/vector_math.h"
#include "util/utf8.h"

namespace lens::store::sqlite {
namespace {

static_assert(std::endian::native == std::endian::little,
              "vectors are stored as little-endian float32; add a byte swap for this target");

using util::ErrorCode;
using util::fail;
using util::Result;
using util::Status;

// The columns of a RunSummary (run_from reads them), before FROM embedding_runs.
constexpr const char* k_run_columns =
    "SELECT id, provider, model, started_at, coalesce(finished_at, ''), status, embedded, "
    "unchanged, skipped, failed, truncated, tokens, requests, retries, rate_limited, "
    "(julianday(coalesce(finished_at, heartbeat_at, started_at)) - julianday(started_at)) * 86400.0, "
    "coalesce(error, ''), fenced ";

RunSummary run_from(Statement& q) {
  RunSummary r;
  r.id = q.integer(0);
  r.provider = q.text(1);
  r.model = q.text(2);
  r.started_at = q.text(3);
  r.finished_at = q.text(4);
  r.status = core::parse_run_status(q.text(5)).value_or(core::RunStatus::failed);
  r.stats.embedded = q.integer(6);
  r.stats.unchanged = q.integer(7);
  r.stats.failed = q.integer(9);
  r.stats.truncated = q.integer(10);
  r.stats.tokens = q.integer(11);
  r.stats.requests = q.integer(12);
  r.stats.retries = q.integer(13);
  r.stats.rate_limited = q.integer(14);
  r.duration_seconds = q.real(15);
  r.error = q.text(16);
  r.stats.fenced = q.integer(17);
  return r;
}

// Freshness, the last 24 hours' spending and the last failed run of m's pair (store.h).
Status fill_model_recency(Database& db, const SourceSql& source, ModelStatus& m) {
  auto prepare = [&](Statement& q, const std::string& text) {
    if (auto s = q.prepare(db, text); !s) return s;
    q.bind(1, std::string_view(m.provider));
    q.bind(2, std::string_view(m.model));
    return Status{};
  };
  Statement oldest;
  if (auto s = prepare(oldest, sql::oldest_unwritten(source)); !s) return s;
  auto row = oldest.step("reading freshness");
  if (!row) return std::unexpected(row.error());
  if (*row) {
    m.oldest_pending_at = oldest.text(0);
    if (!oldest.is_null(1)) m.oldest_pending_age_seconds = oldest.real(1);
  }
  // w: the window's start; s, e: a run's span; f: the share of its tokens in the window.
  Statement spend;
  if (auto s = prepare(spend,
                       "SELECT count(*), coalesce(sum(tokens * f), 0), coalesce(sum(f < 1.0), 0) FROM ("
                       "  SELECT tokens, CASE WHEN e <= w THEN 0.0 WHEN s >= w OR e <= s THEN 1.0 "
                       "    ELSE (e - w) / (e - s) END AS f FROM ("
                       "    SELECT tokens, julianday(started_at) AS s, "
                       "      julianday(coalesce(finished_at, heartbeat_at, started_at)) AS e, "
                       "      julianday('now') - 1.0 AS w "
                       "    FROM embedding_runs WHERE provider = ?1 AND model = ?2)) WHERE f > 0");
      !s)
    return s;
  if (auto s = spend.one_row("reading the last 24 hours"); !s) return s;
  m.runs_24h = spend.integer(0);
  m.tokens_24h = std::llround(spend.real(1));
  m.prorated_runs_24h = spend.integer(2);
  Statement failed;
  if (auto s = prepare(failed, std::string(k_run_columns) +
                                   "FROM embedding_runs WHERE provider = ?1 AND model = ?2 AND status = "
                                   "'failed' ORDER BY id DESC LIMIT 1");
      !s)
    return s;
  row = failed.step("reading the last failed run");
  if (!row) return std::unexpected(row.error());
  if (*row) m.last_failed_run = run_from(failed);
  return {};
}

Status fill_model_status(Database& db, const SourceSql& source, ModelStatus& m) {
  auto count = [&](const std::string& text) -> Result<std::int64_t> {
    Statement q;
    if (auto s = q.prepare(db, text); !s) return std::unexpected(s.error());
    q.bind(1, std::string_view(m.provider));
    q.bind(2, std::string_view(m.model));
    if (auto s = q.one_row("reading status"); !s) return std::unexpected(s.error());
    return q.integer(0);
  };
  auto embedded = count("SELECT count(*) FROM message_embeddings WHERE provider = ?1 AND model = ?2");
  if (!embedded) return std::unexpected(embedded.error());
  m.embedded = *embedded;
  auto pending = count(sql::count_unwritten(source));
  if (!pending) return std::unexpected(pending.error());
  m.pending = *pending;
  auto stale = count(sql::count_stale(source));
  if (!stale) return std::unexpected(stale.error());
  m.stale = *stale;
  Statement q;
  if (auto s = q.prepare(db, fmt::format("SELECT reason, count(*), "
                                         "sum(next_attempt_at IS NOT NULL AND next_attempt_at <= {}) "
                                         "FROM embedding_failures WHERE provider = ?1 AND model = ?2 "
                                         "GROUP BY reason ORDER BY 2 DESC, 1",
                                         sql::k_now));
      !s)
    return s;
  q.bind(1, std::string_view(m.provider));
  q.bind(2, std::string_view(m.model));
  for (;;) {
    auto row = q.step("reading failures");
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    m.failures_by_reason.emplace_back(q.text(0), q.integer(1));
    add_failure_counts(q.text(0), q.integer(1), q.integer(2), m.failed_permanent, m.failed_transient,
                       m.transient_due);
  }
  m.failed = m.failed_permanent + m.failed_transient;
  return fill_model_recency(db, source, m);
}

// The largest mapping SQLite takes without a build option (SQLITE_MAX_MMAP_SIZE); a
// bigger file is read beyond it with pread. The store's other connections map nothing
// (database.cpp): search is the one read of every vector, where a pread per 4 KiB page
// cost more than the scan itself.
constexpr std::int64_t k_scan_mmap_bytes = 0x7fff0000;

// A read-only connection for one scan thread, memory-mapped.
Result<std::unique_ptr<Database>> open_scanner(const std::string& path) {
  auto db = Database::open(path, Database::Mode::read_only);
  if (!db) return db;
  if (auto s = (*db)->exec(fmt::format("PRAGMA mmap_size = {}", k_scan_mmap_bytes)); !s)
    return std::unexpected(s.error());
  return db;
}

// One thread's share of a search: rows of (provider, model) with rowid in [from, to],
// read through `db`, a connection of its own. Returns the error message, "" on success.
std::string scan_range(Database& db, const std::string& provider, const std::string& model,
                       std::span<const float> query, float query_norm, std::int64_t from, std::int64_t to,
                       TopK& top) {
  Statement q;
  if (auto s = q.prepare(db,
                         "SELECT rowid, embedding FROM message_embeddings NOT INDEXED "
                         "WHERE rowid BETWEEN ?3 AND ?4 AND provider = ?1 AND model = ?2");
      !s)
    return s.error().message;
  q.bind(1, std::string_view(provider));
  q.bind(2, std::string_view(model));
  q.bind(3, from);
  q.bind(4, to);
  for (;;) {
    auto row = q.step("scanning vectors");
    if (!row) return row.error().message;
    if (!*row) return {};
    const auto bytes = q.blob(1);
    if (bytes.size() != query.size() * sizeof(float)) continue;  // other dimensions
    top.offer(q.integer(0), cosine_from_bytes(query, query_norm, bytes.data()));
  }
}

}  // namespace

Result<StatusReport> read_status(Database& db, const SourceSql& source, std::size_t recent_runs) {
  StatusReport report;
  auto eligible = db.scalar_int(sql::count_eligible(source));
  if (!eligible) return std::unexpected(eligible.error());
  report.eligible = *eligible;

  Statement models;
  if (auto s = models.prepare(db,
                              "SELECT provider, model FROM message_embeddings GROUP BY provider, model "
                              "UNION SELECT provider, model FROM embedding_failures "
                              "UNION SELECT provider, model FROM embedding_runs ORDER BY 1, 2");
      !s)
    return std::unexpected(s.error());
  for (;;) {
    auto row = models.step("reading status");
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    ModelStatus m;
    m.provider = models.text(0);
    m.model = models.text(1);
    report.models.push_back(std::move(m));
  }
  for (auto& m : report.models) {
    if (auto s = fill_model_status(db, source, m); !s) return std::unexpected(s.error());
  }

  Statement runs;
  if (auto s = runs.prepare(db, std::string(k_run_columns) + "FROM embedding_runs ORDER BY id DESC LIMIT ?1");
      !s)
    return std::unexpected(s.error());
  runs.bind(1, static_cast<std::int64_t>(recent_runs));
  for (;;) {
    auto row = runs.step("reading runs");
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    report.recent_runs.push_back(run_from(runs));
  }
  return report;
}

Result<std::vector<PairSummary>> read_pairs(Database& db) {
  std::map<std::pair<std::string, std::string>, PairSummary> pairs;
  auto at = [&](const std::string& provider, const std::string& model) -> PairSummary& {
    auto& p = pairs[{provider, model}];
    p.provider = provider;
    p.model = model;
    return p;
  };
  // A loose index scan: each step seeks past the last (provider, model, dimensions) seen,
  // so a million rows of one size cost one seek, not a million index entries.
  Statement first, next;
  if (auto s = first.prepare(db,
                             "SELECT provider, model, dimensions FROM message_embeddings "
                             "ORDER BY provider, model, dimensions LIMIT 1");
      !s)
    return std::unexpected(s.error());
  if (auto s = next.prepare(db,
                            "SELECT provider, model, dimensions FROM message_embeddings "
                            "WHERE (provider, model, dimensions) > (?1, ?2, ?3) "
                            "ORDER BY provider, model, dimensions LIMIT 1");
      !s)
    return std::unexpected(s.error());
  Statement* q = &first;
  for (;;) {
    auto row = q->step("listing pairs");
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    const std::string provider = q->text(0), model = q->text(1);
    const std::int64_t dims = q->integer(2);
    at(provider, model).dimensions.push_back(dims);
    next.reset();
    next.bind(1, std::string_view(provider));
    next.bind(2, std::string_view(model));
    next.bind(3, dims);
    q = &next;
  }
  Statement rows;
  if (auto s = rows.prepare(db, "SELECT count(*) FROM message_embeddings WHERE provider = ?1 AND model = ?2");
      !s)
    return std::unexpected(s.error());
  for (auto& [key, p] : pairs) {
    rows.reset();
    rows.bind(1, std::string_view(p.provider));
    rows.bind(2, std::string_view(p.model));
    if (auto s = rows.one_row("counting rows"); !s) return std::unexpected(s.error());
    p.rows = rows.integer(0);
  }
  Statement failures;
  if (auto s = failures.prepare(db, fmt::format("SELECT provider, model, reason, count(*), "
                                                "sum(next_attempt_at IS NOT NULL AND next_attempt_at <= {}) "
                                                "FROM embedding_failures GROUP BY provider, model, reason",
                                                sql::k_now));
      !s)
    return std::unexpected(s.error());
  for (;;) {
    auto row = failures.step("listing pairs");
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    auto& p = at(failures.text(0), failures.text(1));
    add_failure_counts(failures.text(2), failures.integer(3), failures.integer(4), p.failed_permanent,
                       p.failed_transient, p.transient_due);
  }
  std::vector<PairSummary> out;
  for (auto& [key, p] : pairs)
    out.push_back(std::move(p));
  return out;
}

Result<std::vector<FailureRecord>> read_failures(Database& db, const std::string& provider,
                                                 const std::string& model) {
  Statement q;
  if (auto s =
          q.prepare(db,
                    "SELECT provider, model, user_message_id, reason, coalesce(detail, ''), attempts, "
                    "first_failed_at, last_failed_at, coalesce(next_attempt_at, '') FROM embedding_failures "
                    "WHERE (?1 = '' OR provider = ?1) AND (?2 = '' OR model = ?2) "
                    "ORDER BY provider, model, last_failed_at, user_message_id");
      !s)
    return std::unexpected(s.error());
  q.bind(1, std::string_view(provider));
  q.bind(2, std::string_view(model));
  std::vector<FailureRecord> out;
  for (;;) {
    auto row = q.step("reading failures");
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
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
    f.next_attempt_at = q.text(8);
    out.push_back(std::move(f));
  }
  return out;
}

Result<std::vector<SearchHit>> search(Database& db, const SourceSql& source, const std::string& provider,
                                      const std::string& model, std::span<const float> query, std::size_t k,
                                      std::vector<std::unique_ptr<Database>>& scanners) {
  std::int64_t lo = 0, hi = -1;
  {
    Statement range;
    if (auto s = range.prepare(db,
                               "SELECT min(rowid), max(rowid) FROM message_embeddings "
                               "WHERE provider = ?1 AND model = ?2");
        !s)
      return std::unexpected(s.error());
    range.bind(1, std::string_view(provider));
    range.bind(2, std::string_view(model));
    if (auto row = range.step("reading vector range"); row && *row && !range.is_null(0)) {
      lo = range.integer(0);
      hi = range.integer(1);
    }
  }
  const float query_norm = l2_norm(query);
  const auto threads =
      static_cast<std::int64_t>(std::clamp<unsigned>(std::thread::hardware_concurrency(), 1, 8));
  const std::int64_t span = hi >= lo ? (hi - lo) / threads + 1 : 0;
  for (auto t = static_cast<std::int64_t>(scanners.size()); t < threads && span > 0; ++t) {
    auto scanner = open_scanner(db.path());
    if (!scanner)
      return fail(ErrorCode::transient,
                  fmt::format("sqlite {}: scanning vectors: {}", db.path(), scanner.error().message));
    scanners.push_back(std::move(*scanner));
  }
  std::vector<TopK> partial(static_cast<std::size_t>(threads), TopK(k));
  std::vector<std::string> errors(static_cast<std::size_t>(threads));
  std::vector<std::thread> pool;
  for (std::int64_t t = 0; t < threads && span > 0; ++t) {
    pool.emplace_back([&, t] {
      const auto i = static_cast<std::size_t>(t);
      errors[i] = scan_range(*scanners[i], provider, model, query, query_norm, lo + t * span,
                             std::min(hi, lo + (t + 1) * span - 1), partial[i]);
    });
  }
  for (auto& th : pool)
    th.join();
  for (const auto& e : errors) {
    if (!e.empty())
      return fail(ErrorCode::transient, fmt::format("sqlite {}: scanning vectors: {}", db.path(), e));
  }
  TopK top(k);
  for (auto& p : partial) {
    for (const auto& [rowid, score] : p.sorted())
      top.offer(rowid, score);
  }

  Statement detail;
  if (auto s = detail.prepare(db, sql::search_hit(source)); !s) return std::unexpected(s.error());
  std::vector<SearchHit> hits;
  for (const auto& [rowid, score] : top.sorted()) {
    detail.reset();
    detail.bind(1, rowid);
    if (auto row = detail.step("reading search hits"); !row || !*row) continue;
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

}  // namespace lens::store::sqlite
