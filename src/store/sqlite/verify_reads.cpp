// verify's reads on SQLite; see verify_reads.h.
#include "store/sqlite/verify_reads.h"

#include <fmt/core.h>
#include <cstring>

#include "store/sqlite/pending.h"
#include "store/sqlite/sql.h"

namespace lens::store::sqlite {
namespace {

// Steps `q` to its end: every row counted, the first `max_ids` column-0 values kept.
util::Result<IdSample> collect_ids(Statement& q, std::string_view what, std::size_t max_ids) {
  IdSample out;
  for (;;) {
    auto row = q.step(what);
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    ++out.count;
    if (out.ids.size() < max_ids) out.ids.push_back(q.text(0));
  }
  return out;
}

// Rows (table message_embeddings) or failures (embedding_failures) of the pair whose user
// message is not an eligible one of the source: the condition of SourceSql::prune_sql.
std::string orphan_query(const SourceSql& source, const char* table) {
  return source.expand(
      fmt::format("SELECT t.user_message_id FROM {} t WHERE t.provider = ?1 AND t.model = ?2 AND NOT EXISTS "
                  "(SELECT 1 FROM @src p WHERE p.@id = t.user_message_id AND p.@role@isuser)",
                  table));
}

}  // namespace

util::Result<VerifyPage> verify_page(Database& db, const SourceSql& source, const std::string& provider,
                                     const std::string& model, PendingCursor& cursor, std::size_t max_items) {
  Statement& q = db.cached("verify_page", sql::verify_page(source));
  q.reset();
  q.bind(1, std::string_view(cursor.created_at));
  q.bind(2, std::string_view(provider));
  q.bind(3, std::string_view(model));
  q.bind(4, std::string_view(cursor.id));
  q.bind(5, static_cast<std::int64_t>(max_items));
  const auto user_columns = source.mapping().user_columns();
  const auto assistant_columns = source.mapping().assistant_columns();
  VerifyPage page;
  std::string last_created, last_id;
  for (;;) {
    auto row = q.step("reading exchanges to verify");
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    StoredExchange item;
    last_created = q.text(2);
    item.exchange = read_exchange_row(q, user_columns, assistant_columns, 10);
    last_id = item.exchange.user_message_id;
    item.has_row = q.integer(8) != 0;
    item.has_failure = q.integer(9) != 0;
    page.items.push_back(std::move(item));
  }
  q.reset();
  page.exhausted = page.items.size() < max_items;
  if (!page.items.empty()) {
    cursor.started = true;
    cursor.created_at = std::move(last_created);
    cursor.id = std::move(last_id);
  }
  return page;
}

util::Result<Orphans> read_orphans(Database& db, const SourceSql& source, const std::string& provider,
                                   const std::string& model, std::size_t max_ids) {
  Orphans out;
  for (const char* table : {"message_embeddings", "embedding_failures"}) {
    Statement q;
    if (auto s = q.prepare(db, orphan_query(source, table)); !s) return std::unexpected(s.error());
    q.bind(1, std::string_view(provider));
    q.bind(2, std::string_view(model));
    auto ids = collect_ids(q, "reading orphans", max_ids);
    if (!ids) return std::unexpected(ids.error());
    (std::string_view(table) == "message_embeddings" ? out.rows : out.failures) = std::move(*ids);
  }
  // When every run prunes them, `run` is the repair: no statements to print.
  if (out.rows.count + out.failures.count > 0 && source.prune_sql().empty())
    out.repair_sql = source.prune_sql(true);
  return out;
}

util::Result<IdSample> wrong_dimensions(Database& db, const std::string& provider, const std::string& model,
                                        std::int64_t dimensions, std::size_t max_ids) {
  Statement q;
  if (auto s = q.prepare(db,
                         "SELECT user_message_id FROM message_embeddings WHERE provider = ?1 AND model = ?2 "
                         "AND (dimensions <> ?3 OR length(embedding) <> 4 * ?3)");
      !s)
    return std::unexpected(s.error());
  q.bind(1, std::string_view(provider));
  q.bind(2, std::string_view(model));
  q.bind(3, dimensions);
  return collect_ids(q, "reading dimensions", max_ids);
}

util::Result<std::optional<std::vector<float>>> read_vector(Database& db, const std::string& provider,
                                                            const std::string& model,
                                                            const std::string& user_message_id) {
  Statement q;
  if (auto s = q.prepare(db,
                         "SELECT embedding FROM message_embeddings WHERE provider = ?1 AND model = ?2 AND "
                         "user_message_id = ?3");
      !s)
    return std::unexpected(s.error());
  q.bind(1, std::string_view(provider));
  q.bind(2, std::string_view(model));
  q.bind(3, std::string_view(user_message_id));
  auto row = q.step("reading a stored vector");
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::optional<std::vector<float>>();
  const auto bytes = q.blob(0);
  std::vector<float> v(bytes.size() / sizeof(float));
  if (!v.empty()) std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
  return std::optional<std::vector<float>>(std::move(v));
}

}  // namespace lens::store::sqlite
