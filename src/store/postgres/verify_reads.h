// The reads of `lens-embed verify` on PostgreSQL (store.h, "verify"): every eligible exchange
// with its stored hash, orphans, rows of the wrong size, one stored vector. Nothing here
// writes or claims; a read-only store's session refuses writes anyway.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "store/postgres/connection.h"
#include "store/source_sql.h"
#include "store/store.h"

namespace lens::store::postgres {

// Store::verify_page on this connection: one keyset page, no claims.
[[nodiscard]] util::Result<VerifyPage> verify_page(Connection& conn, const SourceSql& source,
                                                   const std::string& provider, const std::string& model,
                                                   PendingCursor& cursor, std::size_t max_items);

// Store::orphans, streamed (single-row mode: flat memory however many there are).
[[nodiscard]] util::Result<Orphans> read_orphans(Connection& conn, const SourceSql& source,
                                                 const std::string& provider, const std::string& model,
                                                 std::size_t max_ids);

// Store::wrong_dimensions: the dimensions column, and the vector's own length (real[]:
// cardinality; pgvector: vector_dims). `embedding_type` as read_embedding_type gives it.
[[nodiscard]] util::Result<IdSample> wrong_dimensions(Connection& conn, const std::string& embedding_type,
                                                      const std::string& provider, const std::string& model,
                                                      std::int64_t dimensions, std::size_t max_ids);

// Store::read_vector: the column read as real[] (pgvector casts to it).
[[nodiscard]] util::Result<std::optional<std::vector<float>>> read_vector(Connection& conn,
                                                                          const SourceSql& source,
                                                                          const std::string& provider,
                                                                          const std::string& model,
                                                                          const std::string& user_message_id);

}  // namespace lens::store::postgres
