// Reads for people rather than for the pipeline: status, the failure list and search.
// Provider and model are arguments of every call; nothing is remembered between calls.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "store/postgres/connection.h"
#include "store/source_sql.h"
#include "store/store.h"

namespace lens::store::postgres {

// Store::status on this connection: one pass per (provider, model) over every user
// message (for reports; never on the per-page path). On failure: the statement's error.
[[nodiscard]] util::Result<StatusReport> read_status(Connection& conn, const SourceSql& source,
                                                     std::size_t recent_runs);

// Store::pairs on this connection: a loose index scan for the distinct (provider, model,
// dimensions) with their row counts, and the failures grouped by pair and reason.
[[nodiscard]] util::Result<std::vector<PairSummary>> read_pairs(Connection& conn);

// Store::failures: every failure of `provider`/`model` ("" matches any). On failure: the
// statement's error, or internal for a reason word this binary does not know.
[[nodiscard]] util::Result<std::vector<FailureRecord>> read_failures(Connection& conn,
                                                                     const std::string& provider,
                                                                     const std::string& model);

// Store::search. `embedding_type` is the column's type (read_embedding_type): a pgvector
// column is ranked by the server (<=>), through a cosine HNSW or IVFFlat index on the
// column when there is one (forced: the planner would scan a small table), and the
// result's method then names the index the plan used; real[] is streamed in binary one
// row at a time and ranked here (flat memory at any size); rows of another dimension
// than `query` are skipped. Hits of messages deleted meanwhile are dropped.
[[nodiscard]] util::Result<SearchResult> search(Connection& conn, const SourceSql& source,
                                                const std::string& embedding_type,
                                                const std::string& provider, const std::string& model,
                                                std::span<const float> query, std::size_t k);

}  // namespace lens::store::postgres
