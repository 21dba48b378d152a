// Reads of the work a run has to do on PostgreSQL: the key window of a keyset page, the
// exchanges of a window or of an id list that need work, the --force horizon, and the
// cheap pending count. Each function is one or two statements on the caller's
// connection, built from `source` (the mapping with the catalog's key type); none retries,
// none keeps state. Exchanges carry the template's {user.COLUMN} / {assistant.COLUMN}s.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "store/postgres/connection.h"
#include "store/source_sql.h"
#include "store/store.h"

namespace lens::store::postgres {

// Ids as the array literals of Params (array_literal).
using IdList = std::vector<std::optional<std::string>>;

// The next window of user messages after a cursor: how many were scanned (at most the
// page size) and the last key. scanned == 0: no user message after the cursor.
struct KeyWindow {
  std::size_t scanned = 0;
  std::string last_created_at;
  std::string last_id;
};

// Step 1 of a page: the next `max_items` keys after `cursor`, from the partial index
// alone (scope.only_failures: from the pair's failures). On failure: the statement's error.
[[nodiscard]] util::Result<KeyWindow> read_key_window(Connection& conn, const SourceSql& source,
                                                      const WorkScope& scope, const PendingCursor& cursor,
                                                      std::size_t max_items);

// Step 1 of a page with scope.changes_only: the ids of the next `max_items` user messages
// after `cursor` that the change queue names or whose failure is due (change_tracking.h),
// in keyset order, and the window they span. On failure: the statement's error.
struct QueuedKeys {
  KeyWindow window;
  IdList ids;
};
[[nodiscard]] util::Result<QueuedKeys> read_queued_keys(Connection& conn, const SourceSql& source,
                                                        const WorkScope& scope, const PendingCursor& cursor,
                                                        std::size_t max_items);

// Step 2 of a page: the exchanges in (cursor, window.last] that `scope` needs work on,
// appended to `out` in keyset order. `since` is the force horizon (server_now()).
[[nodiscard]] util::Status read_window_exchanges(Connection& conn, const SourceSql& source,
                                                 const WorkScope& scope, const std::string& since,
                                                 const PendingCursor& cursor, const KeyWindow& window,
                                                 std::vector<core::Exchange>& out);

// As read_window_exchanges, only the ids (claims then decide who reads them).
[[nodiscard]] util::Result<IdList> read_window_ids(Connection& conn, const SourceSql& source,
                                                   const WorkScope& scope, const std::string& since,
                                                   const PendingCursor& cursor, const KeyWindow& window);

// Those among `ids` that need work (as read_window_ids, for an id list).
[[nodiscard]] util::Result<IdList> read_ids_needing_work(Connection& conn, const SourceSql& source,
                                                         const WorkScope& scope, const std::string& since,
                                                         const IdList& ids);

// The exchanges among `ids` that still need work, read with a fresh snapshot, appended
// to `out` in keyset order.
[[nodiscard]] util::Status read_exchanges_by_id(Connection& conn, const SourceSql& source,
                                                const WorkScope& scope, const std::string& since,
                                                const IdList& ids, std::vector<core::Exchange>& out);

// The server's now() in the ts() format: the --force horizon (rows written after it
// count as done).
[[nodiscard]] util::Result<std::string> server_now(Connection& conn);

// A bytea in text output (hex format, "\\x..." of 32 bytes) as a digest; nullopt otherwise.
[[nodiscard]] std::optional<util::Sha256> sha_from_hex(std::string_view text);

// Store::count_pending on this connection (scope.changes_only: what the queue names).
[[nodiscard]] util::Result<std::int64_t> count_pending(Connection& conn, const SourceSql& source,
                                                       const WorkScope& scope);

}  // namespace lens::store::postgres
