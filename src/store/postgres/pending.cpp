// Pending-work reads of the PostgreSQL store; see pending.h and docs/POSTGRES.md
// ("Pending work") for the two-step page and its plans.
#include "store/postgres/pending.h"

#include <fmt/core.h>
#include <cstring>

#include "store/postgres/change_tracking.h"
#include "store/postgres/sql.h"

namespace lens::store::postgres {
namespace {

using util::Result;
using util::Status;

// $1 provider, $2 model, $3 force, $4 only failures, $5 force_since.
Params scope_params(const WorkScope& scope, const std::string& since) {
  Params p;
  // rehash reads what force reads; the caller tells them apart by the hash.
  p.text(scope.provider)
      .text(scope.model)
      .boolean(scope.force || scope.rehash)
      .boolean(scope.only_failures)
      .text(since);
  return p;
}

// started, created_at, id: NULLs before the first page (an empty string would not parse
// as a timestamp even where the condition never looks at it).
Params& cursor_params(Params& p, const PendingCursor& cursor) {
  p.boolean(cursor.started);
  if (cursor.started)
    p.text(cursor.created_at).text(cursor.id);
  else
    p.null().null();
  return p;
}

Params window_params(const WorkScope& scope, const std::string& since, const PendingCursor& cursor,
                     const KeyWindow& window) {
  Params p = scope_params(scope, since);
  cursor_params(p, cursor).text(window.last_created_at).text(window.last_id);
  return p;
}

// Rows of sql::pending(PendingColumns::full, ...).
void append_exchanges(const SourceSql& source, const Rows& r, std::vector<core::Exchange>& out) {
  const auto user_columns = source.mapping().user_columns();
  const auto assistant_columns = source.mapping().assistant_columns();
  for (int i = 0; i < r.size(); ++i) {
    core::Exchange ex;
    ex.user_message_id = r.text(i, 0);
    ex.user_content = r.text(i, 3);
    ex.assistant_message_id = r.optional_text(i, 4);
    if (ex.assistant_message_id) ex.assistant_content = r.text(i, 5);
    ex.source_version = r.text(i, 6);
    if (!r.is_null(i, 7)) ex.stored_sha256 = sha_from_hex(r.bytes(i, 7));
    int column = 8;
    for (const auto& name : user_columns)
      ex.user_columns[name] = r.text(i, column++);
    for (const auto& name : assistant_columns)
      ex.assistant_columns[name] = r.text(i, column++);
    out.push_back(std::move(ex));
  }
}

// Column 0 of every row: the ids of a PendingColumns::ids query or a key page.
IdList first_column(const Rows& r) {
  IdList ids;
  for (int i = 0; i < r.size(); ++i)
    ids.emplace_back(r.text(i, 0));
  return ids;
}

// The ids query of sql::pending over the id list `ids`.
Params ids_params(const WorkScope& scope, const std::string& since, const IdList& ids) {
  Params p = scope_params(scope, since);
  p.text(array_literal(ids));
  return p;
}

}  // namespace

std::optional<util::Sha256> sha_from_hex(std::string_view text) {
  if (text.size() != 66 || text[0] != '\\' || text[1] != 'x') return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  util::Sha256 d{};
  for (std::size_t i = 0; i < 32; ++i) {
    const int hi = nibble(text[2 + 2 * i]), lo = nibble(text[3 + 2 * i]);
    if (hi < 0 || lo < 0) return std::nullopt;
    d[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return d;
}

Result<KeyWindow> read_key_window(Connection& conn, const SourceSql& source, const WorkScope& scope,
                                  const PendingCursor& cursor, std::size_t max_items) {
  Params p;
  cursor_params(p, cursor).integer(static_cast<std::int64_t>(max_items));
  if (scope.only_failures) p.text(scope.provider).text(scope.model);
  auto r = conn.exec("reading pending keys", sql::pending_window(source, scope.only_failures), p);
  if (!r) return std::unexpected(r.error());
  KeyWindow w;
  if (r->size() == 0) return w;
  w.scanned = static_cast<std::size_t>(r->integer(0, 2));
  w.last_created_at = r->text(0, 0);
  w.last_id = r->text(0, 1);
  return w;
}

Result<QueuedKeys> read_queued_keys(Connection& conn, const SourceSql& source, const WorkScope& scope,
                                    const PendingCursor& cursor, std::size_t max_items) {
  Params p;
  cursor_params(p, cursor)
      .integer(static_cast<std::int64_t>(max_items))
      .text(scope.provider)
      .text(scope.model);
  auto r = conn.exec("reading queued changes", queued_keys_page(source), p);
  if (!r) return std::unexpected(r.error());
  QueuedKeys keys;
  keys.window.scanned = static_cast<std::size_t>(r->size());
  keys.ids = first_column(*r);
  if (r->size() > 0) {
    keys.window.last_id = r->text(r->size() - 1, 0);
    keys.window.last_created_at = r->text(r->size() - 1, 1);
  }
  return keys;
}

Status read_window_exchanges(Connection& conn, const SourceSql& source, const WorkScope& scope,
                             const std::string& since, const PendingCursor& cursor, const KeyWindow& window,
                             std::vector<core::Exchange>& out) {
  auto r =
      conn.exec("reading pending exchanges",
                sql::pending(source, sql::PendingColumns::full, sql::PendingWhere::window, scope.changes),
                window_params(scope, since, cursor, window));
  if (!r) return std::unexpected(r.error());
  append_exchanges(source, *r, out);
  return {};
}

Result<IdList> read_window_ids(Connection& conn, const SourceSql& source, const WorkScope& scope,
                               const std::string& since, const PendingCursor& cursor,
                               const KeyWindow& window) {
  auto r = conn.exec("reading pending exchanges",
                     sql::pending(source, sql::PendingColumns::ids, sql::PendingWhere::window, scope.changes),
                     window_params(scope, since, cursor, window));
  if (!r) return std::unexpected(r.error());
  return first_column(*r);
}

Result<IdList> read_ids_needing_work(Connection& conn, const SourceSql& source, const WorkScope& scope,
                                     const std::string& since, const IdList& ids) {
  auto r = conn.exec("reading queued changes",
                     sql::pending(source, sql::PendingColumns::ids, sql::PendingWhere::ids, scope.changes),
                     ids_params(scope, since, ids));
  if (!r) return std::unexpected(r.error());
  return first_column(*r);
}

Status read_exchanges_by_id(Connection& conn, const SourceSql& source, const WorkScope& scope,
                            const std::string& since, const IdList& ids, std::vector<core::Exchange>& out) {
  auto r = conn.exec("reading claimed exchanges",
                     sql::pending(source, sql::PendingColumns::full, sql::PendingWhere::ids, scope.changes),
                     ids_params(scope, since, ids));
  if (!r) return std::unexpected(r.error());
  append_exchanges(source, *r, out);
  return {};
}

Result<std::string> server_now(Connection& conn) {
  auto r = conn.exec("reading the clock", fmt::format("SELECT {}", sql::ts("now()")));
  if (!r) return std::unexpected(r.error());
  return r->text(0, 0);
}

Result<std::int64_t> count_pending(Connection& conn, const SourceSql& source, const WorkScope& scope) {
  auto r = scope.only_failures || scope.changes_only
               ? conn.exec("counting pending work",
                           scope.only_failures ? sql::count_failures(source) : count_queued(source),
                           Params().text(scope.provider).text(scope.model))
               : conn.exec("counting pending work", sql::count_pending(source),
                           Params().text(scope.provider).text(scope.model).boolean(scope.force));
  if (!r) return std::unexpected(r.error());
  return r->integer(0, 0);
}

}  // namespace lens::store::postgres
