// The reads of `lens-embed verify` on SQLite (store.h, "verify"): every eligible exchange
// with its stored hash, orphans, rows of the wrong size, one stored vector. Nothing here
// writes; the read-only connection (query_only) would refuse it anyway.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "store/source_sql.h"
#include "store/sqlite/database.h"
#include "store/store.h"

namespace lens::store::sqlite {

// Store::verify_page on `db`: one keyset page (a fresh cursor is ('', '')).
[[nodiscard]] util::Result<VerifyPage> verify_page(Database& db, const SourceSql& source,
                                                   const std::string& provider, const std::string& model,
                                                   PendingCursor& cursor, std::size_t max_items);

// Store::orphans on `db`.
[[nodiscard]] util::Result<Orphans> read_orphans(Database& db, const SourceSql& source,
                                                 const std::string& provider, const std::string& model,
                                                 std::size_t max_ids);

// Store::wrong_dimensions on `db`: the dimensions column, or a blob that is not
// 4 × `dimensions` bytes.
[[nodiscard]] util::Result<IdSample> wrong_dimensions(Database& db, const std::string& provider,
                                                      const std::string& model, std::int64_t dimensions,
                                                      std::size_t max_ids);

// Store::read_vector on `db`.
[[nodiscard]] util::Result<std::optional<std::vector<float>>> read_vector(Database& db,
                                                                          const std::string& provider,
                                                                          const std::string& model,
                                                                          const std::string& user_message_id);

}  // namespace lens::store::sqlite
