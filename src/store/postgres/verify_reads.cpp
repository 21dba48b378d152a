// verify's reads on PostgreSQL; see verify_reads.h.
#include "store/postgres/verify_reads.h"

#include <fmt/core.h>

#include "store/postgres/migrations.h"
#include "store/postgres/pending.h"
#include "store/postgres/sql.h"

namespace lens::store::postgres {
namespace {

// Streams `sql`: every row counted, the first `max_ids` column-0 values kept.
util::Result<IdSample> collect_ids(Connection& conn, std::string_view what, const std::string& sql,
                                   const Params& params, std::size_t max_ids) {
  IdSample out;
  auto s = conn.for_each_row(what, sql, params, [&](const Rows& row) {
    ++out.count;
    if (out.ids.size() < max_ids) out.ids.emplace_back(row.bytes(0, 0));
  });
  if (!s) return std::unexpected(s.error());
  return out;
}

}  // namespace

util::Result<VerifyPage> verify_page(Connection& conn, const SourceSql& source, const std::string& provider,
                                     const std::string& model, PendingCursor& cursor, std::size_t max_items) {
  Params p;
  p.text(provider).text(model).boolean(cursor.started);
  if (cursor.started)
    p.text(cursor.created_at).text(cursor.id);
  else
    p.null().null();
  p.integer(static_cast<std::int64_t>(max_items));
  auto r = conn.exec("reading exchanges to verify", sql::verify_page(source), p);
  if (!r) return std::unexpected(r.error());
  const auto user_columns = source.mapping().user_columns();
  const auto assistant_columns = source.mapping().assistant_columns();
  VerifyPage page;
  for (int i = 0; i < r->size(); ++i) {
    StoredExchange item;
    core::Exchange& ex = item.exchange;
    ex.user_message_id = r->text(i, 0);
    ex.user_content = r->text(i, 3);
    ex.assistant_message_id = r->optional_text(i, 4);
    if (ex.assistant_message_id) ex.assistant_content = r->text(i, 5);
    ex.source_version = r->text(i, 6);
    if (!r->is_null(i, 7)) ex.stored_sha256 = sha_from_hex(r->bytes(i, 7));
    item.has_row = r->boolean(i, 8);
    item.has_failure = r->boolean(i, 9);
    int column = 10;
    for (const auto& name : user_columns)
      ex.user_columns[name] = r->text(i, column++);
    for (const auto& name : assistant_columns)
      ex.assistant_columns[name] = r->text(i, column++);
    page.items.push_back(std::move(item));
  }
  page.exhausted = page.items.size() < max_items;
  if (r->size() > 0) {
    cursor.started = true;
    cursor.created_at = r->text(r->size() - 1, 2);
    cursor.id = r->text(r->size() - 1, 0);
  }
  return page;
}

util::Result<Orphans> read_orphans(Connection& conn, const SourceSql& source, const std::string& provider,
                                   const std::string& model, std::size_t max_ids) {
  Orphans out;
  for (const char* table : {"message_embeddings", "embedding_failures"}) {
    const std::string sql = source.expand(fmt::format(
        "SELECT t.user_message_id::text FROM {} t WHERE t.provider = $1 AND t.model = $2 AND NOT EXISTS "
        "(SELECT 1 FROM @src p WHERE p.@id = t.user_message_id AND p.@role@isuser)",
        table));
    auto ids = collect_ids(conn, "reading orphans", sql, Params().text(provider).text(model), max_ids);
    if (!ids) return std::unexpected(ids.error());
    (std::string_view(table) == "message_embeddings" ? out.rows : out.failures) = std::move(*ids);
  }
  // When every run prunes them, `run` is the repair: no statements to print.
  if (out.rows.count + out.failures.count > 0 && source.prune_sql().empty())
    out.repair_sql = source.prune_sql(true);
  return out;
}

util::Result<IdSample> wrong_dimensions(Connection& conn, const std::string& embedding_type,
                                        const std::string& provider, const std::string& model,
                                        std::int64_t dimensions, std::size_t max_ids) {
  const std::string length =
      is_pgvector(embedding_type) ? "vector_dims(embedding)" : "coalesce(cardinality(embedding), -1)";
  return collect_ids(conn, "reading dimensions",
                     fmt::format("SELECT user_message_id::text FROM message_embeddings WHERE provider = $1 "
                                 "AND model = $2 AND (dimensions <> $3::integer OR {} <> $3::integer)",
                                 length),
                     Params().text(provider).text(model).integer(dimensions), max_ids);
}

util::Result<std::optional<std::vector<float>>> read_vector(Connection& conn, const SourceSql& source,
                                                            const std::string& provider,
                                                            const std::string& model,
                                                            const std::string& user_message_id) {
  auto r = conn.exec("reading a stored vector",
                     source.expand("SELECT embedding::real[] FROM message_embeddings WHERE provider = $1 AND "
                                   "model = $2 AND user_message_id = $3::@key"),
                     Params().text(provider).text(model).text(user_message_id), true);
  if (!r) return std::unexpected(r.error());
  if (r->size() == 0) return std::optional<std::vector<float>>();
  std::vector<float> v;
  if (!get_float_array(r->bytes(0, 0), v)) {
    return util::fail(util::ErrorCode::internal,
                      fmt::format("postgres: the stored vector of {} is not a float array", user_message_id));
  }
  return std::optional<std::vector<float>>(std::move(v));
}

}  // namespace lens::store::postgres
