// The Batch API ledger on PostgreSQL; see batch_ledger.h.
#include "store/postgres/batch_ledger.h"

#include <fmt/core.h>

#include "store/postgres/pending.h"
#include "store/postgres/sql.h"

namespace lens::store::postgres {
namespace {

using util::Result;
using util::Status;

// Every call opens its session if needed (one attempt, as the store's calls).
Status ready(Connection& conn) {
  return conn.ensure();
}

// Runs `body` in one transaction: committed when it succeeds, rolled back otherwise.
template <typename F>
Status in_transaction(Connection& conn, F&& body) {
  if (auto s = conn.exec_simple("recording a batch", "BEGIN"); !s) return s;
  if (auto s = body(); !s) {
    conn.rollback();
    return s;
  }
  return conn.exec_simple("recording a batch", "COMMIT");
}

std::string hex(const util::Sha256& d) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (auto b : d) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 15]);
  }
  return out;
}

const std::string k_batch_columns = fmt::format(
    "batch_key, provider, model, dimensions, coalesce(remote_id, ''), coalesce(input_file_id, ''), "
    "coalesce(output_file_id, ''), coalesce(error_file_id, ''), status, done, items, requests, tokens, "
    "completed, failed, coalesce(error, ''), {}, {}",
    sql::ts("created_at"), sql::ts("updated_at"));

BatchRecord read_batch(const Rows& r, int i) {
  BatchRecord b;
  b.key = r.text(i, 0);
  b.provider = r.text(i, 1);
  b.model = r.text(i, 2);
  if (!r.is_null(i, 3)) b.dimensions = static_cast<int>(r.integer(i, 3));
  b.remote_id = r.text(i, 4);
  b.input_file_id = r.text(i, 5);
  b.output_file_id = r.text(i, 6);
  b.error_file_id = r.text(i, 7);
  b.status = r.text(i, 8);
  b.done = r.boolean(i, 9);
  b.items = r.integer(i, 10);
  b.requests = r.integer(i, 11);
  b.tokens = r.integer(i, 12);
  b.completed = r.integer(i, 13);
  b.failed = r.integer(i, 14);
  b.error = r.text(i, 15);
  b.created_at = r.text(i, 16);
  b.updated_at = r.text(i, 17);
  return b;
}

}  // namespace

Status PostgresBatchLedger::record_batch(const BatchRecord& batch, const std::vector<BatchItem>& items) {
  if (auto s = ready(conn_); !s) return s;
  IdList ids, shas, custom_ids, indexes, tokens;
  for (const auto& item : items) {
    ids.emplace_back(item.user_message_id);
    shas.emplace_back(hex(item.content_sha256));
    custom_ids.emplace_back(item.custom_id);
    indexes.emplace_back(std::to_string(item.input_index));
    tokens.emplace_back(std::to_string(item.tokens));
  }
  const std::string id_array = array_literal(ids);
  return in_transaction(conn_, [&]() -> Status {
    auto b = conn_.exec(
        "recording a batch",
        "INSERT INTO embedding_batches (batch_key, provider, model, dimensions, status, items, "
        "requests, tokens) VALUES ($1, $2, $3, $4::integer, 'recorded', $5, $6, $7)",
        Params()
            .text(batch.key)
            .text(batch.provider)
            .text(batch.model)
            .optional(batch.dimensions ? std::optional(std::to_string(*batch.dimensions)) : std::nullopt)
            .integer(static_cast<std::int64_t>(items.size()))
            .integer(batch.requests)
            .integer(batch.tokens));
    if (!b) return std::unexpected(b.error());
    auto i = conn_.exec(
        "recording a batch's items",
        source_.expand("INSERT INTO embedding_batch_items (batch_key, user_message_id, content_sha256, "
                       "custom_id, input_index, tokens) "
                       "SELECT $1, t.id::@key, decode(t.sha, 'hex'), t.cid, t.idx, t.tok "
                       "FROM unnest($2::text[], $3::text[], $4::text[], $5::integer[], $6::bigint[]) "
                       "AS t(id, sha, cid, idx, tok)"),
        Params()
            .text(batch.key)
            .text(id_array)
            .text(array_literal(shas))
            .text(array_literal(custom_ids))
            .text(array_literal(indexes))
            .text(array_literal(tokens)));
    if (!i) return std::unexpected(i.error());
    auto c = conn_.exec("handing claims to a batch",
                        source_.expand("DELETE FROM embedding_claims WHERE provider = $1 AND model = $2 "
                                       "AND worker = $3 AND user_message_id = ANY($4::@key[])"),
                        Params().text(batch.provider).text(batch.model).text(worker_).text(id_array));
    if (!c) return std::unexpected(c.error());
    return {};
  });
}

Status PostgresBatchLedger::update_batch(const BatchRecord& batch) {
  if (auto s = ready(conn_); !s) return s;
  auto r =
      conn_.exec("updating a batch",
                 "UPDATE embedding_batches SET remote_id = nullif($2, ''), input_file_id = nullif($3, ''), "
                 "output_file_id = nullif($4, ''), error_file_id = nullif($5, ''), status = $6, "
                 "done = $7, completed = $8, failed = $9, error = nullif($10, ''), updated_at = now() "
                 "WHERE batch_key = $1",
                 Params()
                     .text(batch.key)
                     .text(batch.remote_id)
                     .text(batch.input_file_id)
                     .text(batch.output_file_id)
                     .text(batch.error_file_id)
                     .text(batch.status)
                     .boolean(batch.done)
                     .integer(batch.completed)
                     .integer(batch.failed)
                     .text(batch.error));
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<std::vector<BatchRecord>> PostgresBatchLedger::list_batches(const std::string& provider,
                                                                   const std::string& model, bool open_only) {
  if (auto s = ready(conn_); !s) return std::unexpected(s.error());
  auto r =
      conn_.exec("listing batches",
                 "SELECT " + k_batch_columns +
                     " FROM embedding_batches WHERE ($1 = '' OR provider = $1) AND ($2 = '' OR model = $2) "
                     "AND (NOT $3::boolean OR NOT done) ORDER BY created_at DESC, batch_key DESC",
                 Params().text(provider).text(model).boolean(open_only));
  if (!r) return std::unexpected(r.error());
  std::vector<BatchRecord> out;
  out.reserve(static_cast<std::size_t>(r->size()));
  for (int i = 0; i < r->size(); ++i)
    out.push_back(read_batch(*r, i));
  return out;
}

Result<std::vector<BatchExchange>> PostgresBatchLedger::batch_exchanges(const std::string& key) {
  if (auto s = ready(conn_); !s) return std::unexpected(s.error());
  auto r = conn_.exec("reading a batch's exchanges", sql::batch_exchanges(source_), Params().text(key));
  if (!r) return std::unexpected(r.error());
  const auto user_columns = source_.mapping().user_columns();
  const auto assistant_columns = source_.mapping().assistant_columns();
  std::vector<BatchExchange> out;
  out.reserve(static_cast<std::size_t>(r->size()));
  for (int i = 0; i < r->size(); ++i) {
    BatchExchange e;
    e.custom_id = r->text(i, 0);
    e.input_index = r->integer(i, 1);
    if (auto sha = sha_from_hex(r->bytes(i, 2))) e.content_sha256 = *sha;
    if (!r->is_null(i, 3)) {
      core::Exchange ex;
      ex.user_message_id = r->text(i, 3);
      ex.user_content = r->text(i, 6);
      ex.assistant_message_id = r->optional_text(i, 7);
      if (ex.assistant_message_id) ex.assistant_content = r->text(i, 8);
      ex.source_version = r->text(i, 9);
      int column = 10;
      for (const auto& name : user_columns)
        ex.user_columns[name] = r->text(i, column++);
      for (const auto& name : assistant_columns)
        ex.assistant_columns[name] = r->text(i, column++);
      e.current = std::move(ex);
    }
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::int64_t> PostgresBatchLedger::held_items(const std::string& provider, const std::string& model) {
  if (auto s = ready(conn_); !s) return std::unexpected(s.error());
  auto r = conn_.exec("counting items in batches",
                      "SELECT coalesce(sum(items), 0) FROM embedding_batches WHERE NOT done AND "
                      "($1 = '' OR provider = $1) AND ($2 = '' OR model = $2)",
                      Params().text(provider).text(model));
  if (!r) return std::unexpected(r.error());
  return r->integer(0, 0);
}

}  // namespace lens::store::postgres
