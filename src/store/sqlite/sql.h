// Query text of the SQLite store that reads the source tables (messages): the pending
// window and needs-work predicate, the answer of a user message, the eligible, pending
// and stale counts, search details, and the writes that check messages. Kept together so
// that a change to the source schema lands in this one file (docs/POSTGRES.md has the
// PostgreSQL twin, store/postgres/sql.h). Parameters are part of each contract below.
// Every statement is built from the source mapping `s` (source_sql.h): with the default
// mapping it is the statement of the fixed schema, names quoted. The pending query's
// columns 8.. are the {user.COLUMN}s, then the {assistant.COLUMN}s, in the mapping's order.
#pragma once

#include <string>
#include <string_view>

#include "store/source_sql.h"

namespace lens::store::sqlite::sql {

// strftime of the current time as ISO-8601 UTC with milliseconds, as stored.
extern const char* const k_now;

// The key window: (created_at, id) of the next ?4 user messages after (?1, ?2). A fresh
// cursor is ('', ''), below every real created_at. `only_failures`: only user messages
// with a recorded failure for ?3 provider, ?5 model (walked from embedding_failures, so
// `failures --retry` costs what the failures cost, not what the table does).
[[nodiscard]] std::string pending_window(const SourceSql& s, bool only_failures);

// The exchanges in ((?1, ?8), (?6, ?7)] that need work for ?2 provider, ?3 model, ?4
// force: id, conversation, created_at, content, answer id, answer content, source
// version, stored sha256; in keyset order. A failure of the same source version is
// skipped unless it is transient and due. `only_failures`: exactly those with a recorded
// failure (?4 unused).
[[nodiscard]] std::string pending(const SourceSql& s, bool only_failures);

// count_pending: eligible user messages without a row (?3 force: all) and without a
// failure that is not due, for ?1 provider, ?2 model. `only_failures`: those with a
// recorded failure (?3 unused).
[[nodiscard]] std::string count_pending(const SourceSql& s, bool only_failures);

// status: eligible (non-blank) user messages; no parameters.
[[nodiscard]] std::string count_eligible(const SourceSql& s);
// status for ?1 provider, ?2 model: user messages with neither a row nor a failure.
[[nodiscard]] std::string count_unwritten(const SourceSql& s);
// status for ?1 provider, ?2 model: rows whose exchange changed since they were written.
[[nodiscard]] std::string count_stale(const SourceSql& s);
// status for ?1 provider, ?2 model: the first user message in keyset order of those
// count_unwritten counts: its created_at and age in seconds (NULL when julianday() cannot
// read it); no row when there is none.
[[nodiscard]] std::string oldest_unwritten(const SourceSql& s);

// verify: the next ?5 eligible user messages after (?1, ?4) for ?2 provider, ?3 model, every
// one whatever its row or failure: the pending columns 0..7 (7: the row's sha256, NULL when
// none), 8 whether a row exists, 9 whether a failure is recorded, then the template columns
// from 10, in keyset order.
[[nodiscard]] std::string verify_page(const SourceSql& s);

// search: user message id, answer id, conversation id, created_at and the first 400
// characters of the row with rowid ?1.
[[nodiscard]] std::string search_hit(const SourceSql& s);

// The items of batch ?1 with their exchanges as the source holds them now (NULL p.id: the
// user message is gone): custom_id, input_index, content_sha256, then the columns of
// pending() from p.id on.
[[nodiscard]] std::string batch_exchanges(const SourceSql& s);

// write_batch: upsert of one row (?1 provider, ?2 model, ?3 id, ?4 answer id, ?5 sha256,
// ?6 tokens, ?7 truncated, ?8 dimensions, ?9 vector blob, ?10 source version); a message
// deleted since it was read is skipped instead of failing on the foreign key; a late
// write is fenced (store.h: a stored row or failure of a newer version). Returns the id
// when written, no row when not.
[[nodiscard]] std::string upsert_row(const SourceSql& s);

// write_batch: one touch (?1 provider, ?2 model, ?3 id, ?4 answer id, ?5 source version,
// ?6 input hash or NULL), fenced as store.h says. Returns the id when applied.
[[nodiscard]] std::string touch_row();

// ?1 > ?2 as instants (either an ISO-8601 text); false when either is NULL or unreadable.
[[nodiscard]] std::string newer(std::string_view a, std::string_view b);

// write_batch: one failure (?1 provider, ?2 model, ?3 id, ?4 reason, ?5 detail, ?6 source
// version, ?7 1 when the reason is transient), attempts += 1 on conflict, next_attempt_at
// = now + core::transient_retry_delay(attempts) when transient, else NULL; a deleted
// message is skipped; a late one (a row or failure of a newer version stored) is fenced.
// Returns the id when recorded.
[[nodiscard]] std::string upsert_failure(const SourceSql& s);

}  // namespace lens::store::sqlite::sql
