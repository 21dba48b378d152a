// Status, failures and search of the PostgreSQL store; see reports.h.
#include "store/postgres/reports.h"

#include <fmt/core.h>
#include <algorithm>
#include <cmath>
#include <map>
#include <unordered_map>

#include "store/postgres/claims.h"
#include "store/postgres/migrations.h"
#include "store/postgres/sql.h"
#include "store/shared_sql.h"
#include "store/vector_math.h"
#include "util/utf8.h"

namespace lens::store::postgres {
namespace {

using util::ErrorCode;
using util::fail;
using util::Result;
using util::Status;

using Ranked = std::vector<std::pair<std::string, double>>;  // user message id, score; best first

// The columns of a RunSummary (run_from reads them), before FROM embedding_runs.
std::string run_columns() {
  return fmt::format(
      "SELECT id, provider, model, {}, coalesce({}, ''), status, embedded, unchanged, skipped, failed, "
      "truncated, tokens, requests, retries, rate_limited, "
      "extract(epoch FROM coalesce(finished_at, heartbeat_at, started_at) - started_at), "
      "coalesce(error, ''), fenced ",
      sql::ts("started_at"), sql::ts("finished_at"));
}

RunSummary run_from(const Rows& r, int i) {
  RunSummary s;
  s.id = r.integer(i, 0);
  s.provider = r.text(i, 1);
  s.model = r.text(i, 2);
  s.started_at = r.text(i, 3);
  s.finished_at = r.text(i, 4);
  s.status = core::parse_run_status(r.text(i, 5)).value_or(core::RunStatus::failed);
  s.stats.embedded = r.integer(i, 6);
  s.stats.unchanged = r.integer(i, 7);
  s.stats.failed = r.integer(i, 9);
  s.stats.truncated = r.integer(i, 10);
  s.stats.tokens = r.integer(i, 11);
  s.stats.requests = r.integer(i, 12);
  s.stats.retries = r.integer(i, 13);
  s.stats.rate_limited = r.integer(i, 14);
  s.duration_seconds = r.real(i, 15);
  s.error = r.text(i, 16);
  s.stats.fenced = r.integer(i, 17);
  return s;
}

// Freshness, the last 24 hours' spending and the last failed run of m's pair (store.h).
Status fill_model_recency(Connection& conn, const SourceSql& source, ModelStatus& m) {
  const auto pair = [&] { return Params().text(m.provider).text(m.model); };
  auto oldest = conn.exec("reading freshness", sql::oldest_unwritten(source), pair());
  if (!oldest) return std::unexpected(oldest.error());
  if (oldest->size() > 0) {
    m.oldest_pending_at = oldest->text(0, 0);
    if (!oldest->is_null(0, 1)) m.oldest_pending_age_seconds = oldest->real(0, 1);
  }
  // w: the window's start; s, e: a run's span; f: the share of its tokens in the window.
  auto spend =
      conn.exec("reading the last 24 hours",
                "SELECT count(*), coalesce(sum(tokens * f), 0)::float8, count(*) FILTER (WHERE f < 1) FROM ("
                "  SELECT tokens, (CASE WHEN e <= w THEN 0 WHEN s >= w OR e <= s THEN 1 "
                "    ELSE extract(epoch FROM e - w) / extract(epoch FROM e - s) END)::float8 AS f FROM ("
                "    SELECT tokens, started_at AS s, coalesce(finished_at, heartbeat_at, started_at) AS e, "
                "      now() - interval '24 hours' AS w "
                "    FROM embedding_runs WHERE provider = $1 AND model = $2) r) x WHERE f > 0",
                pair());
  if (!spend) return std::unexpected(spend.error());
  m.runs_24h = spend->integer(0, 0);
  m.tokens_24h = std::llround(spend->real(0, 1));
  m.prorated_runs_24h = spend->integer(0, 2);
  auto failed = conn.exec("reading the last failed run",
                          run_columns() +
                              "FROM embedding_runs WHERE provider = $1 AND model = $2 AND status = 'failed' "
                              "ORDER BY id DESC LIMIT 1",
                          pair());
  if (!failed) return std::unexpected(failed.error());
  if (failed->size() > 0) m.last_failed_run = run_from(*failed, 0);
  return {};
}

// The live workers (their key's advisory lock is held; a claim of a worker without a key
// lives by its lease) with their claims per pair, and the claims of the others.
Status read_workers(Connection& conn, StatusReport& report) {
  report.has_claims = true;
  auto r = conn.exec(
      "reading workers",
      fmt::format("SELECT worker, provider, model, count(*), {}, max(expires_at) < now(), "
                  "  CASE WHEN worker_key IS NULL THEN max(expires_at) >= now() "
                  "    ELSE worker_key = ANY ({}) END "
                  "FROM embedding_claims GROUP BY worker, worker_key, provider, model ORDER BY 1, 2, 3",
                  sql::ts("max(expires_at)"), held_worker_keys()));
  if (!r) return std::unexpected(r.error());
  for (int i = 0; i < r->size(); ++i) {
    if (!r->boolean(i, 6)) {
      report.orphaned_claims += r->integer(i, 3);
      continue;
    }
    WorkerStatus w;
    w.worker = r->text(i, 0);
    w.provider = r->text(i, 1);
    w.model = r->text(i, 2);
    w.claims = r->integer(i, 3);
    w.lease_expires_at = r->text(i, 4);
    w.lease_expired = r->boolean(i, 5);
    report.workers.push_back(std::move(w));
  }
  return {};
}

Status fill_model_status(Connection& conn, const SourceSql& source, ModelStatus& m) {
  auto counts =
      conn.exec("reading status", sql::model_counts(source), Params().text(m.provider).text(m.model));
  if (!counts) return std::unexpected(counts.error());
  m.embedded = counts->integer(0, 0);
  m.pending = counts->integer(0, 1);
  m.stale = counts->integer(0, 2);
  auto reasons = conn.exec("reading status",
                           "SELECT reason, count(*), count(*) FILTER (WHERE next_attempt_at <= now()) "
                           "FROM embedding_failures WHERE provider = $1 AND model = $2 "
                           "GROUP BY reason ORDER BY 2 DESC, 1",
                           Params().text(m.provider).text(m.model));
  if (!reasons) return std::unexpected(reasons.error());
  for (int j = 0; j < reasons->size(); ++j) {
    m.failures_by_reason.emplace_back(reasons->text(j, 0), reasons->integer(j, 1));
    add_failure_counts(reasons->text(j, 0), reasons->integer(j, 1), reasons->integer(j, 2),
                       m.failed_permanent, m.failed_transient, m.transient_due);
  }
  m.failed = m.failed_permanent + m.failed_transient;
  return fill_model_recency(conn, source, m);
}

// The details of `ranked` hits, in rank order; the answer comes from the row of
// (provider, model).
Result<std::vector<SearchHit>> hits_for(Connection& conn, const SourceSql& source,
                                        const std::string& provider, const std::string& model,
                                        const Ranked& ranked) {
  std::vector<SearchHit> hits;
  if (ranked.empty()) return hits;
  std::vector<std::optional<std::string>> ids;
  for (const auto& [id, score] : ranked)
    ids.emplace_back(id);
  auto r = conn.exec("reading search hits", sql::search_hits(source),
                     Params().text(array_literal(ids)).text(provider).text(model));
  if (!r) return std::unexpected(r.error());
  std::unordered_map<std::string, int> row_of;
  for (int i = 0; i < r->size(); ++i)
    row_of[r->text(i, 0)] = i;
  for (const auto& [id, score] : ranked) {
    auto it = row_of.find(id);
    if (it == row_of.end()) continue;  // deleted meanwhile
    SearchHit h;
    h.user_message_id = id;
    h.assistant_message_id = r->optional_text(it->second, 1);
    h.conversation_id = r->text(it->second, 2);
    h.created_at = r->text(it->second, 3);
    h.snippet = util::repair_utf8(r->text(it->second, 4));
    h.score = score;
    hits.push_back(std::move(h));
  }
  return hits;
}

// real[]: stream every vector of (provider, model) in binary, one row at a time, and
// keep the top k (flat memory at any table size).
Result<Ranked> rank_by_scan(Connection& conn, const std::string& provider, const std::string& model,
                            std::span<const float> query, std::size_t k) {
  const float query_norm = l2_norm(query);
  std::vector<std::string> ids;
  TopK top(k);
  std::vector<float> v;
  auto s =
      conn.for_each_row("scanning vectors",
                        "SELECT user_message_id::text, embedding FROM message_embeddings "
                        "WHERE provider = $1 AND model = $2 AND dimensions = $3::integer",
                        Params().text(provider).text(model).integer(static_cast<std::int64_t>(query.size())),
                        [&](const Rows& row) {
                          if (!get_float_array(row.bytes(0, 1), v) || v.size() != query.size()) return;
                          const double score = cosine_from_bytes(
                              query, query_norm, reinterpret_cast<const std::uint8_t*>(v.data()));
                          ids.emplace_back(row.bytes(0, 0));
                          top.offer(static_cast<std::int64_t>(ids.size() - 1), score);
                        });
  if (!s) return std::unexpected(s.error());
  Ranked ranked;
  for (const auto& [index, score] : top.sorted())
    ranked.emplace_back(ids[static_cast<std::size_t>(index)], score);
  return ranked;
}

// The pgvector cosine indexes (HNSW, IVFFlat) on the embedding column, and whether
// pgvector has iterative index scans (0.8: a filtered scan goes on until LIMIT is met).
struct VectorIndexes {
  std::vector<std::pair<std::string, std::string>> indexes;  // name, access method
  bool iterative_scan = false;
};

Result<VectorIndexes> find_vector_indexes(Connection& conn) {
  auto r = conn.exec(
      "finding vector indexes",
      "SELECT c.relname, am.amname, (SELECT string_to_array(split_part(extversion, '-', 1), '.')::int[] "
      ">= '{0,8}' FROM pg_extension WHERE extname = 'vector') FROM pg_index i "
      "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam "
      "JOIN pg_opclass o ON o.oid = i.indclass[0] "
      "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
      "WHERE i.indrelid = 'message_embeddings'::regclass AND i.indisvalid AND i.indnatts = 1 "
      "AND a.attname = 'embedding' AND am.amname IN ('hnsw', 'ivfflat') "
      "AND o.opcname IN ('vector_cosine_ops', 'halfvec_cosine_ops') ORDER BY 1");
  if (!r) return std::unexpected(r.error());
  VectorIndexes out;
  for (int i = 0; i < r->size(); ++i) {
    out.indexes.emplace_back(r->text(i, 0), r->text(i, 1));
    out.iterative_scan = r->boolean(i, 2);
  }
  return out;
}

// pgvector: the server orders by cosine distance (<=>). With a cosine index on the
// column, in a transaction of its own: plans that sort are ruled out, so the index's
// ordered scan answers (the planner would scan and sort a small table), hnsw.ef_search
// is at least k (an HNSW scan returns no more), and pgvector 0.8 goes on scanning past
// rows of other pairs. The method is read from the plan (EXPLAIN of the same statement
// and parameters), not assumed: a partial index whose predicate does not cover the pair
// is not used.
Result<Ranked> rank_by_pgvector(Connection& conn, const std::string& provider, const std::string& model,
                                std::span<const float> query, std::size_t k, const std::string& type,
                                std::string& method) {
  std::string literal = "[";
  for (std::size_t i = 0; i < query.size(); ++i)
    literal += fmt::format("{}{}", i ? "," : "", query[i]);
  literal += "]";
  const std::string sql = fmt::format(
      "SELECT user_message_id::text, 1 - (embedding <=> $3::{0}) FROM message_embeddings "
      "WHERE provider = $1 AND model = $2 ORDER BY embedding <=> $3::{0} LIMIT $4",
      type);
  auto params = [&] {
    return Params().text(provider).text(model).text(literal).integer(static_cast<std::int64_t>(k));
  };
  method = "exact scan";
  auto found = find_vector_indexes(conn);
  if (!found) return std::unexpected(found.error());
  if (found->indexes.empty()) {
    auto r = conn.exec("searching", sql, params());
    if (!r) return std::unexpected(r.error());
    Ranked ranked;
    for (int i = 0; i < r->size(); ++i)
      ranked.emplace_back(r->text(i, 0), r->real(i, 1));
    return ranked;
  }
  auto fail_in_transaction = [&](util::Error e) -> Result<Ranked> {
    conn.rollback();
    return std::unexpected(std::move(e));
  };
  // hnsw.ef_search: 1 to 1000.
  std::string settings = fmt::format(
      "BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off; SET LOCAL hnsw.ef_search = {};",
      std::clamp<std::size_t>(k, 40, 1000));
  if (found->iterative_scan) settings += " SET LOCAL hnsw.iterative_scan = strict_order;";
  if (auto s = conn.exec_simple("searching", settings); !s) return fail_in_transaction(s.error());
  auto plan = conn.exec("searching", "EXPLAIN " + sql, params());
  if (!plan) return fail_in_transaction(plan.error());
  for (int i = 0; i < plan->size(); ++i) {
    const std::string line = plan->text(i, 0);
    for (const auto& [name, am] : found->indexes) {
      if (line.find("Index Scan using " + name + " ") != std::string::npos)
        method = fmt::format("{} index {} (approximate)", am == "hnsw" ? "HNSW" : "IVFFlat", name);
    }
  }
  auto r = conn.exec("searching", sql, params());
  if (!r) return fail_in_transaction(r.error());
  Ranked ranked;
  for (int i = 0; i < r->size(); ++i)
    ranked.emplace_back(r->text(i, 0), r->real(i, 1));
  if (auto s = conn.exec_simple("searching", "COMMIT"); !s) return fail_in_transaction(s.error());
  return ranked;
}

}  // namespace

Result<StatusReport> read_status(Connection& conn, const SourceSql& source, std::size_t recent_runs) {
  StatusReport report;
  auto eligible = conn.exec("reading status", sql::count_eligible(source));
  if (!eligible) return std::unexpected(eligible.error());
  report.eligible = eligible->integer(0, 0);
  auto models = conn.exec("reading status",
                          "SELECT provider, model FROM message_embeddings GROUP BY provider, model "
                          "UNION SELECT provider, model FROM embedding_failures "
                          "UNION SELECT provider, model FROM embedding_runs ORDER BY 1, 2");
  if (!models) return std::unexpected(models.error());
  for (int i = 0; i < models->size(); ++i) {
    ModelStatus m;
    m.provider = models->text(i, 0);
    m.model = models->text(i, 1);
    if (auto s = fill_model_status(conn, source, m); !s) return std::unexpected(s.error());
    report.models.push_back(std::move(m));
  }
  auto runs = conn.exec("reading runs", run_columns() + "FROM embedding_runs ORDER BY id DESC LIMIT $1",
                        Params().integer(static_cast<std::int64_t>(recent_runs)));
  if (!runs) return std::unexpected(runs.error());
  for (int i = 0; i < runs->size(); ++i)
    report.recent_runs.push_back(run_from(*runs, i));
  if (auto s = read_workers(conn, report); !s) return std::unexpected(s.error());
  return report;
}

Result<std::vector<PairSummary>> read_pairs(Connection& conn) {
  // A loose index scan over message_embeddings_dimensions: one seek per distinct (provider,
  // model, dimensions), so a million rows of one size cost one probe.
  auto dims = conn.exec(
      "listing pairs",
      "WITH RECURSIVE t(provider, model, dimensions) AS ("
      "  (SELECT provider, model, dimensions FROM message_embeddings ORDER BY 1, 2, 3 LIMIT 1) "
      "  UNION ALL "
      "  SELECT n.provider, n.model, n.dimensions FROM t CROSS JOIN LATERAL ("
      "    SELECT e.provider, e.model, e.dimensions FROM message_embeddings e "
      "    WHERE (e.provider, e.model, e.dimensions) > (t.provider, t.model, t.dimensions) "
      "    ORDER BY 1, 2, 3 LIMIT 1) n) "
      "SELECT t.provider, t.model, t.dimensions, "
      "  (SELECT count(*) FROM message_embeddings c WHERE c.provider = t.provider AND c.model = t.model "
      "   AND c.dimensions = t.dimensions) FROM t ORDER BY 1, 2, 3");
  if (!dims) return std::unexpected(dims.error());
  std::map<std::pair<std::string, std::string>, PairSummary> pairs;
  auto at = [&](const std::string& provider, const std::string& model) -> PairSummary& {
    auto& p = pairs[{provider, model}];
    p.provider = provider;
    p.model = model;
    return p;
  };
  for (int i = 0; i < dims->size(); ++i) {
    auto& p = at(dims->text(i, 0), dims->text(i, 1));
    p.dimensions.push_back(dims->integer(i, 2));
    p.rows += dims->integer(i, 3);
  }
  auto failures = conn.exec("listing pairs",
                            "SELECT provider, model, reason, count(*), "
                            "count(*) FILTER (WHERE next_attempt_at <= now()) "
                            "FROM embedding_failures GROUP BY provider, model, reason");
  if (!failures) return std::unexpected(failures.error());
  for (int i = 0; i < failures->size(); ++i) {
    auto& p = at(failures->text(i, 0), failures->text(i, 1));
    add_failure_counts(failures->text(i, 2), failures->integer(i, 3), failures->integer(i, 4),
                       p.failed_permanent, p.failed_transient, p.transient_due);
  }
  std::vector<PairSummary> out;
  for (auto& [key, p] : pairs)
    out.push_back(std::move(p));
  return out;
}

Result<std::vector<FailureRecord>> read_failures(Connection& conn, const std::string& provider,
                                                 const std::string& model) {
  auto r = conn.exec(
      "reading failures",
      fmt::format("SELECT provider, model, user_message_id::text, reason, coalesce(detail, ''), "
                  "attempts, {}, {}, coalesce({}, '') FROM embedding_failures "
                  "WHERE ($1 = '' OR provider = $1) AND ($2 = '' OR model = $2) "
                  "ORDER BY provider, model, last_failed_at, user_message_id",
                  sql::ts("first_failed_at"), sql::ts("last_failed_at"), sql::ts("next_attempt_at")),
      Params().text(provider).text(model));
  if (!r) return std::unexpected(r.error());
  std::vector<FailureRecord> out;
  for (int i = 0; i < r->size(); ++i) {
    FailureRecord f;
    f.provider = r->text(i, 0);
    f.model = r->text(i, 1);
    f.user_message_id = r->text(i, 2);
    const std::string word = r->text(i, 3);
    const auto reason = core::parse_failure_reason(word);
    if (!reason) {
      return fail(ErrorCode::internal,
                  fmt::format("postgres: unknown failure reason \"{}\" in embedding_failures", word));
    }
    f.reason = *reason;
    f.detail = r->text(i, 4);
    f.attempts = r->integer(i, 5);
    f.first_failed_at = r->text(i, 6);
    f.last_failed_at = r->text(i, 7);
    f.next_attempt_at = r->text(i, 8);
    out.push_back(std::move(f));
  }
  return out;
}

Result<SearchResult> search(Connection& conn, const SourceSql& source, const std::string& embedding_type,
                            const std::string& provider, const std::string& model,
                            std::span<const float> query, std::size_t k) {
  SearchResult result;
  result.method = "exact scan";
  auto ranked = is_pgvector(embedding_type)
                    ? rank_by_pgvector(conn, provider, model, query, k, embedding_type, result.method)
                    : rank_by_scan(conn, provider, model, query, k);
  if (!ranked) return std::unexpected(ranked.error());
  auto hits = hits_for(conn, source, provider, model, *ranked);
  if (!hits) return std::unexpected(hits.error());
  result.hits = std::move(*hits);
  return result;
}

}  // namespace lens::store::postgres
