// Query text of the SQLite store that reads the source tables; see sql.h.
#include "store/sqlite/sql.h"

#include <fmt/core.h>

#include "store/shared_sql.h"

namespace lens::store::sqlite::sql {
namespace {

// Version of the exchange as SQL: newest of the two messages' edit/creation times.
constexpr const char* k_source_version =
    "CASE WHEN a.@id IS NULL THEN coalesce(p.@updated, p.@created) "
    "ELSE max(coalesce(p.@updated, p.@created), coalesce(a.@updated, a.@created)) END";

// The answer of p under the mapping's reply rule, as alias a (NULL columns when none).
// "next": the first user/assistant message after p in its conversation, if an assistant's.
// A pattern: expanded once, with the statement around it.
std::string answer_join(const SourceSql& s) {
  const auto& reply = s.mapping().reply().value;
  switch (reply.kind) {
    case core::ReplyKind::next:
      return "LEFT JOIN @src a ON a.@id = (SELECT n.@id FROM @src n "
             "  WHERE n.@conv = p.@conv AND n.@role@isrole "
             "    AND (n.@created, n.@id) > (p.@created, p.@id) "
             "  ORDER BY n.@created, n.@id LIMIT 1) AND a.@role@isassistant ";
    case core::ReplyKind::column:
      return fmt::format(
          "LEFT JOIN @src a ON a.@id = (SELECT n.@id FROM @src n "
          "  WHERE n.{} = p.@id AND n.@role@isassistant ORDER BY n.@created, n.@id LIMIT 1) ",
          core::quote_sql_name(reply.column));
    case core::ReplyKind::none:
      break;
  }
  return "LEFT JOIN @src a ON 0 ";
}

// Non-blank in SQL terms: ASCII white space only; Unicode-only blanks are caught later
// by util::is_blank and recorded as empty_input.
constexpr const char* k_non_blank =
    "p.@content IS NOT NULL AND trim(p.@content, ' ' || char(9,10,11,12,13)) <> ''";

// A failure holds an exchange back while it is of the same source version and either
// permanent (no next attempt) or not yet due.
std::string needs_work() {
  return fmt::format(
      "(?4 OR e.user_message_id IS NULL OR e.assistant_message_id IS NOT a.@id "
      "  OR e.source_version IS NOT ({0})) "
      "AND NOT EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = ?2 "
      "  AND f.model = ?3 AND f.user_message_id = p.@id AND f.source_version IS ({0}) "
      "  AND (f.next_attempt_at IS NULL OR f.next_attempt_at > {1}))",
      k_source_version, k_now);
}

constexpr const char* k_has_failure =
    "EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = ?2 AND f.model = ?3 "
    "AND f.user_message_id = p.@id)";

// An exchange in an unfinished batch of the pair is held by it, the way a claim holds one:
// no run of the pair (synchronous, batch or failures --retry) takes it until the batch's
// results are applied or it is released (store/batch_ledger.h).
std::string not_held(std::string_view provider, std::string_view model) {
  return fmt::format(
      "NOT EXISTS (SELECT 1 FROM embedding_batch_items bi JOIN embedding_batches b "
      "ON b.batch_key = bi.batch_key WHERE bi.user_message_id = p.@id AND b.done = 0 "
      "AND b.provider = {} AND b.model = {})",
      provider, model);
}

}  // namespace

const char* const k_now = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

// The bounds must stay plain row-value comparisons (no "OR first page" trick): only then
// does SQLite seek the index instead of scanning it from the start every page.
std::string pending_window(const SourceSql& s, bool only_failures) {
  if (only_failures) {
    return s.expand(
        "SELECT m.@created, m.@id FROM embedding_failures f JOIN @src m ON m.@id = f.user_message_id "
        "WHERE f.provider = ?3 AND f.model = ?5 AND m.@role@isuser AND (m.@created, m.@id) > (?1, ?2) "
        "ORDER BY m.@created, m.@id LIMIT ?4");
  }
  return s.expand(
      "SELECT m.@created, m.@id FROM @src m WHERE m.@role@isuser AND "
      "(m.@created, m.@id) > (?1, ?2) ORDER BY m.@created, m.@id LIMIT ?4");
}

std::string pending(const SourceSql& s, bool only_failures) {
  return s.expand(fmt::format(
      "SELECT p.@id, p.@conv, p.@created, p.@content, a.@id, a.@content, ({0}), "
      "       e.content_sha256{4}{5} "
      "FROM @src p {1}"
      "LEFT JOIN message_embeddings e ON e.provider = ?2 AND e.model = ?3 AND e.user_message_id = p.@id "
      "WHERE p.@role@isuser AND (p.@created, p.@id) > (?1, ?8) "
      "  AND (p.@created, p.@id) <= (?6, ?7) AND {2} AND {3} AND {6} "
      "ORDER BY p.@created, p.@id",
      k_source_version, answer_join(s), k_non_blank, only_failures ? k_has_failure : needs_work(),
      s.user_columns("p"), s.assistant_columns("a"), not_held("?2", "?3")));
}

// Cheap by design (it only sizes the progress bar): from the covering indexes, no answer
// lookups; stale rows are not counted.
std::string count_pending(const SourceSql& s, bool only_failures) {
  if (only_failures) {
    return s.expand(
        fmt::format("SELECT count(*) FROM embedding_failures f JOIN @src p ON p.@id = f.user_message_id "
                    "WHERE f.provider = ?1 AND f.model = ?2 AND p.@role@isuser AND {} AND {}",
                    k_non_blank, not_held("?1", "?2")));
  }
  return s.expand(fmt::format(
      "SELECT count(*) FROM @src p WHERE p.@role@isuser AND {} AND (?3 OR NOT EXISTS ("
      "SELECT 1 FROM message_embeddings e WHERE e.provider = ?1 AND e.model = ?2 AND "
      "e.user_message_id = p.@id)) "
      "AND NOT EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = ?1 AND f.model = ?2 "
      "AND f.user_message_id = p.@id AND (f.next_attempt_at IS NULL OR f.next_attempt_at > {})) AND {}",
      k_non_blank, k_now, not_held("?1", "?2")));
}

std::string count_eligible(const SourceSql& s) {
  return s.expand(fmt::format("SELECT count(*) FROM @src p WHERE p.@role@isuser AND {}", k_non_blank));
}

std::string count_unwritten(const SourceSql& s) {
  return s.expand(fmt::format(
      "SELECT count(*) FROM @src p WHERE p.@role@isuser AND {} AND NOT EXISTS "
      "(SELECT 1 FROM message_embeddings e WHERE e.provider = ?1 AND e.model = ?2 AND e.user_message_id = "
      "p.@id) "
      "AND NOT EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = ?1 AND f.model = ?2 "
      "AND f.user_message_id = p.@id)",
      k_non_blank));
}

// The keyset order walks messages_user_keyset (or the mapping's) from its start and stops
// at the first message without a row or a failure.
std::string oldest_unwritten(const SourceSql& s) {
  return s.expand(fmt::format(
      "SELECT p.@created, (julianday('now') - julianday(p.@created)) * 86400.0 FROM @src p "
      "WHERE p.@role@isuser AND {} AND NOT EXISTS "
      "(SELECT 1 FROM message_embeddings e WHERE e.provider = ?1 AND e.model = ?2 AND e.user_message_id = "
      "p.@id) "
      "AND NOT EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = ?1 AND f.model = ?2 "
      "AND f.user_message_id = p.@id) ORDER BY p.@created, p.@id LIMIT 1",
      k_non_blank));
}

std::string count_stale(const SourceSql& s) {
  return s.expand(
      fmt::format("SELECT count(*) FROM message_embeddings e JOIN @src p ON p.@id = e.user_message_id {} "
                  "WHERE e.provider = ?1 AND e.model = ?2 AND (e.assistant_message_id IS NOT a.@id "
                  "OR e.source_version IS NOT ({}))",
                  answer_join(s), k_source_version));
}

std::string batch_exchanges(const SourceSql& s) {
  return s.expand(fmt::format(
      "SELECT bi.custom_id, bi.input_index, bi.content_sha256, p.@id, p.@conv, p.@created, p.@content, "
      "       a.@id, a.@content, ({0}){2}{3} "
      "FROM embedding_batch_items bi LEFT JOIN @src p ON p.@id = bi.user_message_id AND p.@role@isuser {1}"
      "WHERE bi.batch_key = ?1 ORDER BY bi.custom_id, bi.input_index",
      k_source_version, answer_join(s), s.user_columns("p"), s.assistant_columns("a")));
}

std::string verify_page(const SourceSql& s) {
  return s.expand(fmt::format(
      "SELECT p.@id, p.@conv, p.@created, p.@content, a.@id, a.@content, ({0}), e.content_sha256, "
      "  e.user_message_id IS NOT NULL, EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = ?2 "
      "  AND f.model = ?3 AND f.user_message_id = p.@id){3}{4} "
      "FROM @src p {1}"
      "LEFT JOIN message_embeddings e ON e.provider = ?2 AND e.model = ?3 AND e.user_message_id = p.@id "
      "WHERE p.@role@isuser AND (p.@created, p.@id) > (?1, ?4) AND {2} "
      "ORDER BY p.@created, p.@id LIMIT ?5",
      k_source_version, answer_join(s), k_non_blank, s.user_columns("p"), s.assistant_columns("a")));
}

std::string search_hit(const SourceSql& s) {
  return s.expand(
      "SELECT e.user_message_id, e.assistant_message_id, m.@conv, m.@created, "
      "substr(m.@content, 1, 400) FROM message_embeddings e JOIN @rel m ON m.@id = e.user_message_id "
      "WHERE e.rowid = ?1");
}

std::string newer(std::string_view a, std::string_view b) {
  return fmt::format("coalesce(julianday({}) > julianday({}), 0)", a, b);
}

// A newer stored version fences the write only while the stored reply is still a reply
// candidate: a deleted or filtered-out reply takes its version with it (store.h, Fencing).
std::string upsert_row(const SourceSql& s) {
  return s.expand(
      fmt::format("INSERT INTO message_embeddings (provider, model, user_message_id, assistant_message_id, "
                  "  content_sha256, token_count, truncated, dimensions, embedding, source_version) "
                  "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 WHERE EXISTS (SELECT 1 FROM @rel "
                  "WHERE @id = ?3) AND NOT EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = ?1 "
                  "AND f.model = ?2 AND f.user_message_id = ?3 AND {1}) "
                  "ON CONFLICT (provider, model, user_message_id) DO UPDATE SET "
                  "  assistant_message_id = excluded.assistant_message_id, content_sha256 = "
                  "excluded.content_sha256, "
                  "  token_count = excluded.token_count, truncated = excluded.truncated, "
                  "  dimensions = excluded.dimensions, embedding = excluded.embedding, "
                  "  source_version = excluded.source_version, updated_at = {0} "
                  "WHERE NOT ({2} AND (message_embeddings.assistant_message_id IS NULL OR EXISTS (SELECT 1 "
                  "FROM @src r WHERE r.@id = message_embeddings.assistant_message_id))) "
                  "RETURNING user_message_id",
                  k_now, newer("f.source_version", "?10"),
                  newer("message_embeddings.source_version", "excluded.source_version")));
}

std::string touch_row() {
  return fmt::format(
      "UPDATE message_embeddings SET assistant_message_id = ?4, source_version = ?5, updated_at = {} "
      "WHERE provider = ?1 AND model = ?2 AND user_message_id = ?3 "
      "AND (?6 IS NULL OR content_sha256 = ?6) AND NOT {} RETURNING user_message_id",
      k_now, newer("source_version", "?5"));
}

std::string upsert_failure(const SourceSql& s) {
  const auto next = [](std::string_view attempts) {
    return fmt::format(
        "CASE WHEN ?7 THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || ({}) || ' seconds') END",
        transient_delay_seconds_sql(attempts));
  };
  return s.expand(fmt::format(
      "INSERT INTO embedding_failures (provider, model, user_message_id, reason, detail, "
      "source_version, next_attempt_at) "
      "SELECT ?1, ?2, ?3, ?4, ?5, ?6, {1} "
      "WHERE EXISTS (SELECT 1 FROM @rel WHERE @id = ?3) AND NOT EXISTS (SELECT 1 FROM "
      "message_embeddings e WHERE e.provider = ?1 AND e.model = ?2 AND e.user_message_id = ?3 AND {3}) "
      "ON CONFLICT (provider, model, user_message_id) DO UPDATE SET reason = excluded.reason, "
      "  detail = excluded.detail, source_version = ?6, attempts = attempts + 1, last_failed_at = {0}, "
      "  next_attempt_at = {2} WHERE NOT {4} RETURNING user_message_id",
      k_now, next("1"), next("attempts + 1"), newer("e.source_version", "?6"),
      newer("embedding_failures.source_version", "excluded.source_version")));
}

}  // namespace lens::store::sqlite::sql
