// Reads of the work a run has to do on SQLite: keyset pages of exchanges that need work
// and the cheap pending count. docs/ARCHITECTURE.md describes the two-step page.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "store/source_sql.h"
#include "store/sqlite/database.h"
#include "store/store.h"

namespace lens::store::sqlite {

// Store::next_pending on `db` (same contract): step 1 reads the key window of the next
// `max_items` user messages from the partial index, step 2 the exchanges of that window
// that need work. On failure `cursor` is unchanged.
// Every statement follows `source` (the mapping, with the catalog's key type); the
// exchanges carry the template's {user.COLUMN} / {assistant.COLUMN} values.
[[nodiscard]] util::Result<PendingPage> next_pending(Database& db, const SourceSql& source,
                                                     const WorkScope& scope, PendingCursor& cursor,
                                                     std::size_t max_items);

// Store::count_pending on `db`.
// The exchange of one row shaped as the pending query's: id (0), the user's text (3), the
// reply's id and text (4, 5), the source version (6), the stored input hash (7), then the
// template's user and assistant columns from `first_template_column` on. verify_page's rows
// share the shape.
[[nodiscard]] core::Exchange read_exchange_row(Statement& q, const std::vector<std::string>& user_columns,
                                               const std::vector<std::string>& assistant_columns,
                                               int first_template_column);

[[nodiscard]] util::Result<std::int64_t> count_pending(Database& db, const SourceSql& source,
                                                       const WorkScope& scope);

}  // namespace lens::store::sqlite
