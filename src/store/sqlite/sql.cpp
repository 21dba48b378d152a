// Query text of the SQLite store that reads the source tables; see sql.h.
#include "store/sqlite/sql.h"

#include <fmt/core.h>

#include "store/shared_sql.h"

namespace lens::store::sqlite::sql {
namespace {

// Version of the exchange as SQL: newest of the two messages' edit/creation times.
constexpr const char* k_source_version =
    "CASE WHEN a.id IS NULL THEN coalesce(p.updated_at, p.created_at) "
    "ELSE max(coalesce(p.updated_at, p.created_at), coalesce(a.updated_at, a.created_at)) END";

// The answer: the first user/assistant message after p in its conversation, if assistant.
constexpr const char* k_answer_join =
    "LEFT JOIN messages a ON a.id = (SELECT n.id FROM messages n "
    "  WHERE n.conversation_id = p.conversation_id AND n.role IN ('user','assistant') "
    "    AND (n.created_at, n.id) > (p.created_at, p.id) "
    "  ORDER BY n.created_at, n.id LIMIT 1) AND a.role = 'assistant' ";

// Non-blank in SQL terms: ASCII white space only; Unicode-only blanks are caught later
// by util::is_blank and recorded as empty_input.
constexpr const char* k_non_blank =
    "p.content IS NOT NULL AND trim(p.content, ' ' || char(9,10,11,12,13)) <> ''";

// A failure holds an exchange back while it is of the same source version and either
// permanent (no next attempt) or not yet due.
std::string needs_work() {
  return fmt::format(
      "(?4 OR e.user_message_id IS NULL OR e.assistant_message_id IS NOT a.id "
      "  OR e.source_version IS NOT ({0})) "
      "AND NOT EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = ?2 "
      "  AND f.model = ?3 AND f.user_message_id = p.id AND f.source_version IS ({0}) "
      "  AND (f.next_attempt_at IS NULL OR f.next_attempt_at > {1}))",
      k_source_version, k_now);
}

constexpr const char* k_has_failure =
    "EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = ?2 AND f.model = ?3 "
    "AND f.user_message_id = p.id)";

}  // namespace

const char* const k_now = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

// The bounds must stay plain row-value comparisons (no "OR first page" trick): only then
// does SQLite seek the index instead of scanning it from the start every page.
std::string pending_window(bool only_failures) {
  if (only_failures) {
    return "SELECT m.created_at, m.id FROM embedding_failures f JOIN messages m ON m.id = f.user_message_id "
           "WHERE f.provider = ?3 AND f.model = ?5 AND m.role = 'user' AND (m.created_at, m.id) > (?1, ?2) "
           "ORDER BY m.created_at, m.id LIMIT ?4";
  }
  return "SELECT created_at, id FROM messages WHERE role = 'user' AND "
         "(created_at, id) > (?1, ?2) ORDER BY created_at, id LIMIT ?4";
}

std::string pending(bool only_failures) {
  return fmt::format(
      "SELECT p.id, p.conversation_id, p.created_at, p.content, a.id, a.content, ({0}), "
      "       e.content_sha256 "
      "FROM messages p {1}"
      "LEFT JOIN message_embeddings e ON e.provider = ?2 AND e.model = ?3 AND e.user_message_id = p.id "
      "WHERE p.role = 'user' AND (p.created_at, p.id) > (?1, ?8) "
      "  AND (p.created_at, p.id) <= (?6, ?7) AND {2} AND {3} "
      "ORDER BY p.created_at, p.id",
      k_source_version, k_answer_join, k_non_blank, only_failures ? k_has_failure : needs_work());
}

// Cheap by design (it only sizes the progress bar): from the covering indexes, no answer
// lookups; stale rows are not counted.
std::string count_pending(bool only_failures) {
  if (only_failures) {
    return fmt::format(
        "SELECT count(*) FROM embedding_failures f JOIN messages p ON p.id = f.user_message_id "
        "WHERE f.provider = ?1 AND f.model = ?2 AND p.role = 'user' AND {}",
        k_non_blank);
  }
  return fmt::format(
      "SELECT count(*) FROM messages p WHERE p.role = 'user' AND {} AND (?3 OR NOT EXISTS ("
      "SELECT 1 FROM message_embeddings e WHERE e.provider = ?1 AND e.model = ?2 AND "
      "e.user_message_id = p.id)) "
      "AND NOT EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = ?1 AND f.model = ?2 "
      "AND f.user_message_id = p.id AND (f.next_attempt_at IS NULL OR f.next_attempt_at > {}))",
      k_non_blank, k_now);
}

std::string count_eligible() {
  return fmt::format("SELECT count(*) FROM messages p WHERE p.role = 'user' AND {}", k_non_blank);
}

std::string count_unwritten() {
  return fmt::format(
      "SELECT count(*) FROM messages p WHERE p.role = 'user' AND {} AND NOT EXISTS "
      "(SELECT 1 FROM message_embeddings e WHERE e.provider = ?1 AND e.model = ?2 AND e.user_message_id = "
      "p.id) "
      "AND NOT EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = ?1 AND f.model = ?2 "
      "AND f.user_message_id = p.id)",
      k_non_blank);
}

std::string count_stale() {
  return fmt::format(
      "SELECT count(*) FROM message_embeddings e JOIN messages p ON p.id = e.user_message_id {} "
      "WHERE e.provider = ?1 AND e.model = ?2 AND (e.assistant_message_id IS NOT a.id "
      "OR e.source_version IS NOT ({}))",
      k_answer_join, k_source_version);
}

std::string search_hit() {
  return "SELECT e.user_message_id, e.assistant_message_id, m.conversation_id, m.created_at, "
         "substr(m.content, 1, 400) FROM message_embeddings e JOIN messages m ON m.id = e.user_message_id "
         "WHERE e.rowid = ?1";
}

std::string newer(std::string_view a, std::string_view b) {
  return fmt::format("coalesce(julianday({}) > julianday({}), 0)", a, b);
}

std::string upsert_row() {
  return fmt::format(
      "INSERT INTO message_embeddings (provider, model, user_message_id, assistant_message_id, "
      "  content_sha256, token_count, truncated, dimensions, embedding, source_version) "
      "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 WHERE EXISTS (SELECT 1 FROM messages "
      "WHERE id = ?3) AND NOT EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = ?1 "
      "AND f.model = ?2 AND f.user_message_id = ?3 AND {1}) "
      "ON CONFLICT (provider, model, user_message_id) DO UPDATE SET "
      "  assistant_message_id = excluded.assistant_message_id, content_sha256 = "
      "excluded.content_sha256, "
      "  token_count = excluded.token_count, truncated = excluded.truncated, "
      "  dimensions = excluded.dimensions, embedding = excluded.embedding, "
      "  source_version = excluded.source_version, updated_at = {0} "
      "WHERE NOT {2} RETURNING user_message_id",
      k_now, newer("f.source_version", "?10"),
      newer("message_embeddings.source_version", "excluded.source_version"));
}

std::string touch_row() {
  return fmt::format(
      "UPDATE message_embeddings SET assistant_message_id = ?4, source_version = ?5, updated_at = {} "
      "WHERE provider = ?1 AND model = ?2 AND user_message_id = ?3 "
      "AND (?6 IS NULL OR content_sha256 = ?6) AND NOT {} RETURNING user_message_id",
      k_now, newer("source_version", "?5"));
}

std::string upsert_failure() {
  const auto next = [](std::string_view attempts) {
    return fmt::format(
        "CASE WHEN ?7 THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || ({}) || ' seconds') END",
        transient_delay_seconds_sql(attempts));
  };
  return fmt::format(
      "INSERT INTO embedding_failures (provider, model, user_message_id, reason, detail, "
      "source_version, next_attempt_at) "
      "SELECT ?1, ?2, ?3, ?4, ?5, ?6, {1} "
      "WHERE EXISTS (SELECT 1 FROM messages WHERE id = ?3) AND NOT EXISTS (SELECT 1 FROM "
      "message_embeddings e WHERE e.provider = ?1 AND e.model = ?2 AND e.user_message_id = ?3 AND {3}) "
      "ON CONFLICT (provider, model, user_message_id) DO UPDATE SET reason = excluded.reason, "
      "  detail = excluded.detail, source_version = ?6, attempts = attempts + 1, last_failed_at = {0}, "
      "  next_attempt_at = {2} WHERE NOT {4} RETURNING user_message_id",
      k_now, next("1"), next("attempts + 1"), newer("e.source_version", "?6"),
      newer("embedding_failures.source_version", "excluded.source_version"));
}

}  // namespace lens::store::sqlite::sql
