// Reads for people rather than for the pipeline on SQLite: status, the failure list and
// search. Provider and model are arguments of every call.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "store/source_sql.h"
#include "store/sqlite/database.h"
#include "store/store.h"

namespace lens::store::sqlite {

// Store::status on `db`.
[[nodiscard]] util::Result<StatusReport> read_status(Database& db, const SourceSql& source,
                                                     std::size_t recent_runs);

// Store::pairs on `db`: the distinct (provider, model, dimensions) of message_embeddings
// one index seek at a time (message_embeddings_dimensions), a count per pair, and the
// failures grouped by pair and reason.
[[nodiscard]] util::Result<std::vector<PairSummary>> read_pairs(Database& db);

// Store::failures on `db` ("" matches any provider or model). A reason word this binary
// does not know: internal.
[[nodiscard]] util::Result<std::vector<FailureRecord>> read_failures(Database& db,
                                                                     const std::string& provider,
                                                                     const std::string& model);

// Store::search: an exact scan, parallel over rowid ranges; each thread (up to 8) reads
// its range of the table (not an index: a seek per row costs more than the other pairs'
// leaf cells) through its own read-only connection to the file, memory-mapped (WAL lets
// readers run side by side), and keeps its own top k. Rows of another dimension than
// `query` are skipped. `scanners`: those connections, opened here when missing and left
// open for the next search, whose pages are then mapped already. A scan thread that
// cannot read: transient.
[[nodiscard]] util::Result<std::vector<SearchHit>> search(Database& db, const SourceSql& source,
                                                          const std::string& provider,
                                                          const std::string& model,
                                                          std::span<const float> query, std::size_t k,
                                                          std::vector<std::unique_ptr<Database>>& scanners);

}  // namespace lens::store::sqlite
