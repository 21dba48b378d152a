// Query text of the PostgreSQL store that reads the source tables (messages): the
// pending window and needs-work predicate, the answer of a user message, the eligible
// and stale counts, and the writes that join messages. Kept together so that a change to
// the source schema lands in this one file; statements on lens-embed's own tables only
// (claims, runs, migrations) stay beside the code that runs them.
//
// Parameter conventions are part of each function's contract below. Every timestamp
// leaves the server through ts(), so a cursor or source_version read back as
// ::timestamptz is exactly the same instant.
#pragma once

#include <string>
#include <string_view>

#include "store/source_sql.h"

namespace lens::store::postgres::sql {

// `expr` (a timestamptz) as ISO-8601 UTC with all six fractional digits.
[[nodiscard]] std::string ts(std::string_view expr);

// Every statement is built from the source mapping `s` (source_sql.h); with the default
// mapping it is the statement of the fixed schema, names quoted. Keys are cast to the
// source key's type (s.key_type(): uuid, bigint or text), so the "uuid[] literal"s below
// are arrays of that type. The full pending columns continue, from column 8, with the
// {user.COLUMN}s and then the {assistant.COLUMN}s as text.

// The key window (step 1 of a pending page): the last (created_at, id) and the count of
// the next $4 user messages after the cursor. $1 started, $2 created_at, $3 id.
// `only_failures`: only user messages with a recorded failure for $5 provider, $6 model
// (walked from embedding_failures: `failures --retry` costs what the failures cost).
[[nodiscard]] std::string pending_window(const SourceSql& s, bool only_failures);

// Which columns a pending query returns: ids (claims read the exchanges later) or
// full (id, conversation, created_at, content, answer id, answer content, source
// version, stored sha256).
enum class PendingColumns { ids, full };

// Where a pending query looks: the key window after the cursor up to its last key ($6
// started, $7/$8 cursor, $9/$10 last key), or an id list ($6 uuid[] literal).
enum class PendingWhere { window, ids };

// The exchanges of p that need work for $1 provider, $2 model, $3 force, $4 only
// failures (exactly those with a recorded failure), $5 force_since (rows written since
// then count as done under force), in keyset order. A failure of the same source version
// holds an exchange back unless it is transient and due. A row is probed per user message
// (LATERAL ... LIMIT 1), never hash-joined.
// `changes` (WorkScope::changes): also the exchanges the change queue names.
[[nodiscard]] std::string pending(const SourceSql& s, PendingColumns columns, PendingWhere where,
                                  bool changes = false);

// count_pending: eligible user messages without a row ($3 force: all) and without a
// failure that is not due, for $1 provider, $2 model. No answer lookups.
[[nodiscard]] std::string count_pending(const SourceSql& s);

// The items of batch $1 with their exchanges as the source holds them now (NULL p.id: the
// user message is gone): custom_id, input_index, content_sha256, then the columns of
// pending(full) from p.id to x.sv and the mapped columns.
[[nodiscard]] std::string batch_exchanges(const SourceSql& s);
// count_pending with only_failures: eligible user messages with a failure for $1, $2.
[[nodiscard]] std::string count_failures(const SourceSql& s);

// status: eligible user messages (non-blank), no parameters.
[[nodiscard]] std::string count_eligible(const SourceSql& s);

// status per ($1 provider, $2 model): rows, pending (no row, no failure), stale rows.
[[nodiscard]] std::string model_counts(const SourceSql& s);
// status per ($1 provider, $2 model): the first user message in keyset order of those
// model_counts counts as pending: its created_at (ts()) and age in seconds by the server's
// clock; no row when there is none.
[[nodiscard]] std::string oldest_unwritten(const SourceSql& s);

// verify: the next $6 eligible user messages after the cursor ($3 started, $4 created_at,
// $5 id) for $1 provider, $2 model, every one whatever its row or failure: the full pending
// columns 0..7 (7: the row's sha256, NULL when none), 8 whether a row exists, 9 whether a
// failure is recorded, then the template columns from 10, in keyset order.
[[nodiscard]] std::string verify_page(const SourceSql& s);

// search: id, answer id, conversation id, created_at, first 400 characters of each user
// message in $1 (uuid[] literal), the answer from the row of $2 provider, $3 model.
[[nodiscard]] std::string search_hits(const SourceSql& s);

// write_batch: upsert of the staged rows (lens_stage) for $1 provider, $2 model, fenced
// (store.h, "Fencing") for $3 this worker (text; NULL without claims); `cast` converts
// the staged real[] to the column type ("" for real[]). Rows of messages deleted since
// they were read are skipped; one row per id (the last staged). Returns one row per
// written id (id, n) and n = the ids it considered; (NULL, n) when none was written.
[[nodiscard]] std::string upsert_staged(const SourceSql& s, std::string_view cast);

// write_batch: touches for $1 provider, $2 model from arrays $3 ids, $4 answer ids,
// $5 source versions, $6 input hashes (hex; NULL: unchecked), fenced (store.h). Returns
// the ids touched.
[[nodiscard]] std::string touch_rows(const SourceSql& s);

// write_batch: failures for $1 provider, $2 model, fenced for $3 this worker (as
// upsert_staged), from arrays $4 ids, $5 reasons, $6 details, $7 source versions,
// $8 transient (boolean); attempts += 1 on conflict; next_attempt_at = now +
// core::transient_retry_delay(attempts) for transient ones, else NULL. Deleted messages
// skipped. Returns what upsert_staged returns, for failures.
[[nodiscard]] std::string upsert_failures(const SourceSql& s);

}  // namespace lens::store::postgres::sql
