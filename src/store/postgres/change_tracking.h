// init --track-changes on PostgreSQL: three statement-level AFTER triggers on the source table
// (INSERT, UPDATE, DELETE, each with its transition tables) feed lens_embed_change_queue, in
// lens-embed's own schema, with the keys of the rows a statement touched; a run hashes the
// exchanges the queue names (sql::pending with `changes`) instead of every input. Not a
// schema version: init --track-changes creates the queue, function and triggers and
// --untrack-changes drops them.
#pragma once

#include <string>

#include "store/postgres/connection.h"
#include "store/source_sql.h"
#include "store/store.h"

namespace lens::store::postgres {

// The queue, unqualified (found through the session's search_path, as lens-embed's tables).
inline constexpr const char* k_change_queue = "lens_embed_change_queue";

// Installs (on) or removes (off) the queue, its trigger function and the three triggers, in
// one transaction; idempotent. On failure: configuration when the source is a view (no
// transition tables), naming the fix; otherwise as the connection classifies it.
[[nodiscard]] util::Status set_change_tracking(Connection& conn, const SourceSql& source, bool on);

// Whether the three triggers and the queue are there, and how many entries wait.
[[nodiscard]] util::Result<ChangeTracking> read_change_tracking(Connection& conn, const SourceSql& source);

// Marks every queued entry with `pass` (Store::take_changes); drops the entries marked `pass`.
[[nodiscard]] util::Status take_changes(Connection& conn, const std::string& pass);
[[nodiscard]] util::Status drop_changes(Connection& conn, const std::string& pass);

// The condition (a pattern of SourceSql::expand, on the user message row `p`) that the
// queue names p: its own key, its conversation (reply "next": an edit of the reply or a late
// reply changes p's input) or, for reply "column:NAME", a reply naming it.
[[nodiscard]] std::string queued_condition(const SourceSql& source);

// WorkScope::changes_only reads, driven from the queue (never a walk of the keyset), of the
// user messages the queue names (as queued_condition) or with a failure of (provider, model)
// now due. Patterns of SourceSql::expand.
// A page: id (text) and created_at (ts()) of the next $4 of them after the cursor ($1
// started, $2 created_at, $3 id) in keyset order; $5 provider, $6 model.
[[nodiscard]] std::string queued_keys_page(const SourceSql& source);
// Their number (the progress total; blank ones too): $1 provider, $2 model.
[[nodiscard]] std::string count_queued(const SourceSql& source);

}  // namespace lens::store::postgres
