// Pending-work reads of the SQLite store; see pending.h.
#include "store/sqlite/pending.h"

#include <cstring>

#include "store/sqlite/sql.h"

namespace lens::store::sqlite {

core::Exchange read_exchange_row(Statement& q, const std::vector<std::string>& user_columns,
                                 const std::vector<std::string>& assistant_columns,
                                 int first_template_column) {
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
  int column = first_template_column;
  for (const auto& name : user_columns)
    ex.user_columns[name] = q.text(column++);
  for (const auto& name : assistant_columns)
    ex.assistant_columns[name] = q.text(column++);
  return ex;
}

util::Result<PendingPage> next_pending(Database& db, const SourceSql& source, const WorkScope& scope,
                                       PendingCursor& cursor, std::size_t max_items) {
  // Step 1: the key window, read from the partial index alone. Bounding the scan (not
  // the result) gives every page the same cost however much is already done.
  // only_failures walks the pair's failures instead (as many pages as failures, not messages).
  const bool failures = scope.only_failures;
  Statement& window =
      db.cached(failures ? "window_failures" : "window", sql::pending_window(source, failures));
  window.reset();
  window.bind(1, std::string_view(cursor.created_at));
  window.bind(2, std::string_view(cursor.id));
  window.bind(4, static_cast<std::int64_t>(max_items));
  if (failures) {
    window.bind(3, std::string_view(scope.provider));
    window.bind(5, std::string_view(scope.model));
  }
  std::size_t scanned = 0;
  std::string last_created, last_id;
  for (;;) {
    auto row = window.step("reading pending keys");
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    ++scanned;
    last_created = window.text(0);
    last_id = window.text(1);
  }
  PendingPage page;
  page.exhausted = scanned < max_items;
  if (scanned == 0) return page;

  // Step 2: the exchanges of that window that need work.
  Statement& q = db.cached(failures ? "pending_failures" : "pending", sql::pending(source, failures));
  const auto user_columns = source.mapping().user_columns();
  const auto assistant_columns = source.mapping().assistant_columns();
  q.reset();
  q.bind(1, std::string_view(cursor.created_at));
  q.bind(2, std::string_view(scope.provider));
  q.bind(3, std::string_view(scope.model));
  // rehash reads what force reads; the caller tells them apart by the hash.
  if (!failures) q.bind(4, std::int64_t{scope.force || scope.rehash ? 1 : 0});
  q.bind(6, std::string_view(last_created));
  q.bind(7, std::string_view(last_id));
  q.bind(8, std::string_view(cursor.id));
  for (;;) {
    auto row = q.step("reading pending exchanges");
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    core::Exchange ex = read_exchange_row(q, user_columns, assistant_columns, 8);
    page.items.push_back(std::move(ex));
  }
  cursor.started = true;
  cursor.created_at = std::move(last_created);
  cursor.id = std::move(last_id);
  return page;
}

util::Result<std::int64_t> count_pending(Database& db, const SourceSql& source, const WorkScope& scope) {
  const bool failures = scope.only_failures;
  Statement& q =
      db.cached(failures ? "count_failures" : "count_pending", sql::count_pending(source, failures));
  q.reset();
  q.bind(1, std::string_view(scope.provider));
  q.bind(2, std::string_view(scope.model));
  if (!failures) q.bind(3, std::int64_t{scope.force ? 1 : 0});
  if (auto s = q.one_row("counting pending work"); !s) return std::unexpected(s.error());
  const std::int64_t n = q.integer(0);
  q.reset();
  return n;
}

}  // namespace lens::store::sqlite
