// The Batch API ledger on SQLite; see batch_ledger.h.
#include "store/sqlite/batch_ledger.h"

#include <cstring>

#include "store/sqlite/sql.h"

namespace lens::store::sqlite {
namespace {

using util::Result;
using util::Status;

// Runs `body` in one IMMEDIATE transaction: committed when it succeeds, rolled back otherwise.
template <typename F>
Status in_transaction(Database& db, F&& body) {
  if (auto s = db.exec("BEGIN IMMEDIATE"); !s) return s;
  if (auto s = body(); !s) {
    (void)db.exec("ROLLBACK");
    return s;
  }
  return db.exec("COMMIT");
}

constexpr const char* k_batch_columns =
    "batch_key, provider, model, dimensions, coalesce(remote_id, ''), coalesce(input_file_id, ''), "
    "coalesce(output_file_id, ''), coalesce(error_file_id, ''), status, done, items, requests, tokens, "
    "completed, failed, coalesce(error, ''), created_at, updated_at";

BatchRecord read_batch(const Statement& q) {
  BatchRecord b;
  b.key = q.text(0);
  b.provider = q.text(1);
  b.model = q.text(2);
  if (!q.is_null(3)) b.dimensions = static_cast<int>(q.integer(3));
  b.remote_id = q.text(4);
  b.input_file_id = q.text(5);
  b.output_file_id = q.text(6);
  b.error_file_id = q.text(7);
  b.status = q.text(8);
  b.done = q.integer(9) != 0;
  b.items = q.integer(10);
  b.requests = q.integer(11);
  b.tokens = q.integer(12);
  b.completed = q.integer(13);
  b.failed = q.integer(14);
  b.error = q.text(15);
  b.created_at = q.text(16);
  b.updated_at = q.text(17);
  return b;
}

}  // namespace

Status SqliteBatchLedger::record_batch(const BatchRecord& batch, const std::vector<BatchItem>& items) {
  return in_transaction(db_, [&]() -> Status {
    Statement& b = db_.cached("batch_insert",
                              "INSERT INTO embedding_batches (batch_key, provider, model, dimensions, "
                              "status, items, requests, tokens) "
                              "VALUES (?1, ?2, ?3, ?4, 'recorded', ?5, ?6, ?7)");
    b.reset();
    b.bind(1, std::string_view(batch.key));
    b.bind(2, std::string_view(batch.provider));
    b.bind(3, std::string_view(batch.model));
    if (batch.dimensions) b.bind(4, std::int64_t{*batch.dimensions});
    b.bind(5, static_cast<std::int64_t>(items.size()));
    b.bind(6, batch.requests);
    b.bind(7, batch.tokens);
    if (auto s = b.run("recording a batch"); !s) return s;
    Statement& i =
        db_.cached("batch_item_insert",
                   "INSERT INTO embedding_batch_items (batch_key, user_message_id, content_sha256, "
                   "custom_id, input_index, tokens) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    for (const auto& item : items) {
      i.reset();
      i.bind(1, std::string_view(batch.key));
      i.bind(2, std::string_view(item.user_message_id));
      i.bind_blob(3, item.content_sha256.data(), item.content_sha256.size());
      i.bind(4, std::string_view(item.custom_id));
      i.bind(5, item.input_index);
      i.bind(6, item.tokens);
      if (auto s = i.run("recording a batch item"); !s) return s;
    }
    return {};
  });
}

Status SqliteBatchLedger::update_batch(const BatchRecord& batch) {
  return in_transaction(db_, [&]() -> Status {
    Statement& q = db_.cached(
        "batch_update",
        std::string(
            "UPDATE embedding_batches SET remote_id = nullif(?2, ''), input_file_id = nullif(?3, ''), "
            "output_file_id = nullif(?4, ''), error_file_id = nullif(?5, ''), status = ?6, done = ?7, "
            "completed = ?8, failed = ?9, error = nullif(?10, ''), updated_at = ") +
            sql::k_now + " WHERE batch_key = ?1");
    q.reset();
    q.bind(1, std::string_view(batch.key));
    q.bind(2, std::string_view(batch.remote_id));
    q.bind(3, std::string_view(batch.input_file_id));
    q.bind(4, std::string_view(batch.output_file_id));
    q.bind(5, std::string_view(batch.error_file_id));
    q.bind(6, std::string_view(batch.status));
    q.bind(7, std::int64_t{batch.done ? 1 : 0});
    q.bind(8, batch.completed);
    q.bind(9, batch.failed);
    q.bind(10, std::string_view(batch.error));
    return q.run("updating a batch");
  });
}

Result<std::vector<BatchRecord>> SqliteBatchLedger::list_batches(const std::string& provider,
                                                                 const std::string& model, bool open_only) {
  Statement& q = db_.cached("batch_list", std::string("SELECT ") + k_batch_columns +
                                              " FROM embedding_batches WHERE (?1 = '' OR provider = ?1) AND "
                                              "(?2 = '' OR model = ?2) AND (?3 = 0 OR done = 0) "
                                              "ORDER BY created_at DESC, batch_key DESC");
  q.reset();
  q.bind(1, std::string_view(provider));
  q.bind(2, std::string_view(model));
  q.bind(3, std::int64_t{open_only ? 1 : 0});
  std::vector<BatchRecord> out;
  for (;;) {
    auto row = q.step("listing batches");
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    out.push_back(read_batch(q));
  }
  return out;
}

Result<std::vector<BatchExchange>> SqliteBatchLedger::batch_exchanges(const std::string& key) {
  Statement& q = db_.cached("batch_exchanges", sql::batch_exchanges(source_));
  const auto user_columns = source_.mapping().user_columns();
  const auto assistant_columns = source_.mapping().assistant_columns();
  q.reset();
  q.bind(1, std::string_view(key));
  std::vector<BatchExchange> out;
  for (;;) {
    auto row = q.step("reading a batch's exchanges");
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    BatchExchange e;
    e.custom_id = q.text(0);
    e.input_index = q.integer(1);
    if (auto sha = q.blob(2); sha.size() == 32) std::memcpy(e.content_sha256.data(), sha.data(), 32);
    if (!q.is_null(3)) {
      core::Exchange ex;
      ex.user_message_id = q.text(3);
      ex.user_content = q.text(6);
      ex.assistant_message_id = q.optional_text(7);
      if (ex.assistant_message_id) ex.assistant_content = q.text(8);
      ex.source_version = q.text(9);
      int column = 10;
      for (const auto& name : user_columns)
        ex.user_columns[name] = q.text(column++);
      for (const auto& name : assistant_columns)
        ex.assistant_columns[name] = q.text(column++);
      e.current = std::move(ex);
    }
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::int64_t> SqliteBatchLedger::held_items(const std::string& provider, const std::string& model) {
  Statement& q = db_.cached("batch_held",
                            "SELECT coalesce(sum(items), 0) FROM embedding_batches WHERE done = 0 AND "
                            "(?1 = '' OR provider = ?1) AND (?2 = '' OR model = ?2)");
  q.reset();
  q.bind(1, std::string_view(provider));
  q.bind(2, std::string_view(model));
  if (auto s = q.one_row("counting items in batches"); !s) return std::unexpected(s.error());
  const std::int64_t n = q.integer(0);
  q.reset();
  return n;
}

}  // namespace lens::store::sqlite
