// Query text of the PostgreSQL store that reads the source tables; see sql.h.
#include "store/postgres/sql.h"

#include <fmt/core.h>

#include "store/shared_sql.h"

namespace lens::store::postgres::sql {
namespace {

// Shared by every pending query: $1 provider, $2 model, $3 force, $4 only failures,
// $5 force_since. A failure holds an exchange back while it is of the same source version
// and either permanent (no next attempt) or not yet due. The statements are planned with
// their parameters (PQexecParams), so only one of the two branches is ever evaluated.
std::string needs_work() {
  return "(($4::boolean AND EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = $1 "
         "  AND f.model = $2 AND f.user_message_id = p.id)) "
         "OR (NOT $4::boolean "
         "AND ($3::boolean AND e.updated_at < $5::timestamptz OR e.user_message_id IS NULL "
         "  OR e.assistant_message_id IS DISTINCT FROM x.aid OR e.source_version IS DISTINCT FROM x.sv) "
         "AND NOT EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = $1 "
         "  AND f.model = $2 AND f.user_message_id = p.id AND f.source_version IS NOT DISTINCT FROM x.sv "
         "  AND (f.next_attempt_at IS NULL OR f.next_attempt_at > now()))))";
}

constexpr const char* k_window_where =
    "($6::boolean IS NOT TRUE OR (p.created_at, p.id) > ($7::timestamptz, $8::uuid)) "
    "AND (p.created_at, p.id) <= ($9::timestamptz, $10::uuid)";
constexpr const char* k_ids_where = "p.id = ANY($6::uuid[])";

}  // namespace

std::string ts(std::string_view expr) {
  return fmt::format("to_char(({}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')", expr);
}

// ASCII white space, as the SQLite store's trim.
const char* const k_non_blank =
    "p.content IS NOT NULL AND btrim(p.content, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) "
    "<> ''";

// The answer of p and the exchange's version: newest coalesce(updated_at, created_at) of
// the user message and its answer. The LATERAL walks messages_conversation_order from p
// onwards and stops at the first user/assistant row.
const char* const k_answer =
    "LEFT JOIN LATERAL (SELECT n.id, n.role, n.content, coalesce(n.updated_at, n.created_at) AS v "
    "  FROM messages n WHERE n.conversation_id = p.conversation_id AND n.role IN ('user','assistant') "
    "    AND (n.created_at, n.id) > (p.created_at, p.id) "
    "  ORDER BY n.created_at, n.id LIMIT 1) nx ON true "
    "CROSS JOIN LATERAL (SELECT CASE WHEN nx.role = 'assistant' THEN nx.id END AS aid, "
    "  CASE WHEN nx.role = 'assistant' THEN nx.content END AS acontent, "
    "  greatest(coalesce(p.updated_at, p.created_at), CASE WHEN nx.role = 'assistant' THEN nx.v END) AS sv) "
    "x ";

// Bounding the scan (not the result) gives every page the same cost however much is
// already done; only the window's last key and its size come back.
std::string pending_window(bool only_failures) {
  const char* keys =
      only_failures
          ? "SELECT m.created_at, m.id FROM embedding_failures f JOIN messages m "
            "ON m.id = f.user_message_id WHERE f.provider = $5 AND f.model = $6 AND m.role = 'user' "
            "AND ($1::boolean IS NOT TRUE OR (m.created_at, m.id) > ($2::timestamptz, $3::uuid)) "
            "ORDER BY m.created_at, m.id LIMIT $4"
          : "SELECT created_at, id FROM messages WHERE role = 'user' AND "
            "($1::boolean IS NOT TRUE OR (created_at, id) > ($2::timestamptz, $3::uuid)) "
            "ORDER BY created_at, id LIMIT $4";
  return fmt::format(
      "SELECT {}, id::text, n FROM (SELECT created_at, id, count(*) OVER () AS n FROM "
      "({}) w) w2 ORDER BY created_at DESC, id DESC LIMIT 1",
      ts("created_at"), keys);
}

// The existing row is looked up by primary key per user message (a LATERAL with LIMIT 1,
// which the planner cannot turn into a hash join): a page then costs O(page) however
// large message_embeddings is. A plain LEFT JOIN was planned as a hash join over every
// row of (provider, model) once the table grew (see docs/POSTGRES.md).
std::string pending(PendingColumns columns, PendingWhere where) {
  std::string select;
  switch (columns) {
    case PendingColumns::ids:
      select = "p.id::text";
      break;
    case PendingColumns::full:
      select = fmt::format(
          "p.id::text, p.conversation_id::text, {}, p.content, x.aid::text, x.acontent, {}, "
          "e.content_sha256",
          ts("p.created_at"), ts("x.sv"));
      break;
  }
  return fmt::format(
      "SELECT {} FROM messages p {}"
      "LEFT JOIN LATERAL (SELECT e.user_message_id, e.assistant_message_id, e.source_version, e.updated_at, "
      "  e.content_sha256 FROM message_embeddings e "
      "  WHERE e.provider = $1 AND e.model = $2 AND e.user_message_id = p.id LIMIT 1) e ON true "
      "WHERE p.role = 'user' AND {} AND {} AND {}{}",
      select, k_answer, where == PendingWhere::window ? k_window_where : k_ids_where, k_non_blank,
      needs_work(), " ORDER BY p.created_at, p.id");
}

// Cheap by design (it sizes the progress bar, like the SQLite store): two primary-key
// anti-joins, no answer lookups; stale rows are not counted.
std::string count_pending() {
  return fmt::format(
      "SELECT count(*) FROM messages p WHERE p.role = 'user' AND {} AND "
      "($3::boolean OR NOT EXISTS (SELECT 1 FROM message_embeddings e "
      "  WHERE e.provider = $1 AND e.model = $2 AND e.user_message_id = p.id)) "
      "AND NOT EXISTS (SELECT 1 FROM embedding_failures f "
      "  WHERE f.provider = $1 AND f.model = $2 AND f.user_message_id = p.id "
      "  AND (f.next_attempt_at IS NULL OR f.next_attempt_at > now()))",
      k_non_blank);
}

std::string count_failures() {
  return fmt::format(
      "SELECT count(*) FROM embedding_failures f JOIN messages p ON p.id = f.user_message_id "
      "WHERE f.provider = $1 AND f.model = $2 AND p.role = 'user' AND {}",
      k_non_blank);
}

std::string count_eligible() {
  return fmt::format("SELECT count(*) FROM messages p WHERE p.role = 'user' AND {}", k_non_blank);
}

std::string model_counts() {
  return fmt::format(
      "SELECT (SELECT count(*) FROM message_embeddings WHERE provider = $1 AND model = $2), "
      "(SELECT count(*) FROM messages p WHERE p.role = 'user' AND {0} AND NOT EXISTS "
      "  (SELECT 1 FROM message_embeddings e WHERE e.provider = $1 AND e.model = $2 AND "
      "e.user_message_id = p.id) "
      "  AND NOT EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = $1 AND f.model = $2 "
      "  AND f.user_message_id = p.id)), "
      "(SELECT count(*) FROM message_embeddings e JOIN messages p ON p.id = e.user_message_id {1}"
      "  WHERE e.provider = $1 AND e.model = $2 AND (e.assistant_message_id IS DISTINCT FROM x.aid "
      "  OR e.source_version IS DISTINCT FROM x.sv))",
      k_non_blank, k_answer);
}

std::string search_hits() {
  return fmt::format(
      "SELECT m.id::text, e.assistant_message_id::text, m.conversation_id::text, {}, "
      "left(m.content, 400) FROM messages m LEFT JOIN message_embeddings e "
      "ON e.user_message_id = m.id AND e.provider = $2 AND e.model = $3 "
      "WHERE m.id = ANY($1::uuid[])",
      ts("m.created_at"));
}

// Another worker's claim is on exchange `id` ($3 this worker, NULL without claims: no
// claim is anyone else's then).
std::string claimed_by_another(std::string_view id) {
  return fmt::format(
      "($3::text IS NOT NULL AND EXISTS (SELECT 1 FROM embedding_claims k WHERE k.provider = $1 "
      "AND k.model = $2 AND k.user_message_id = {} AND k.worker <> $3::text))",
      id);
}

// DISTINCT ON: one row per id even if a caller repeated one (ON CONFLICT may not touch a
// row twice). The join skips messages deleted since they were read, so a foreign-key
// violation cannot sink the batch; `c` counts what is left, `w` what was written: the
// difference was fenced (store.h, "Fencing"). The version fence is in DO UPDATE's WHERE,
// which sees the newest committed row even when it committed after this statement began.
std::string upsert_staged(std::string_view cast) {
  return fmt::format(
      "WITH c AS (SELECT s.* FROM (SELECT DISTINCT ON (user_message_id) user_message_id::uuid AS id, "
      "  assistant_message_id::uuid AS aid, content_sha256, token_count, truncated, dimensions, "
      "  embedding, source_version::timestamptz AS sv FROM lens_stage "
      "  ORDER BY user_message_id, ord DESC) s JOIN messages m ON m.id = s.id), "
      "w AS (INSERT INTO message_embeddings AS e (provider, model, user_message_id, "
      "  assistant_message_id, content_sha256, token_count, truncated, dimensions, embedding, "
      "  source_version) "
      "SELECT $1, $2, c.id, c.aid, c.content_sha256, c.token_count, c.truncated, c.dimensions, "
      "  c.embedding{0}, c.sv FROM c "
      "WHERE NOT EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = $1 AND f.model = $2 "
      "  AND f.user_message_id = c.id AND f.source_version > c.sv) "
      "  AND (NOT {1} OR EXISTS (SELECT 1 FROM message_embeddings x WHERE x.provider = $1 "
      "  AND x.model = $2 AND x.user_message_id = c.id AND x.content_sha256 = c.content_sha256)) "
      "ON CONFLICT (provider, model, user_message_id) DO UPDATE SET "
      "  assistant_message_id = excluded.assistant_message_id, "
      "  content_sha256 = excluded.content_sha256, token_count = excluded.token_count, "
      "  truncated = excluded.truncated, dimensions = excluded.dimensions, "
      "  embedding = excluded.embedding, source_version = excluded.source_version, "
      "  updated_at = now() "
      "WHERE NOT coalesce(e.source_version > excluded.source_version, false) "
      "  AND (e.content_sha256 = excluded.content_sha256 OR NOT {2}) "
      "RETURNING e.user_message_id) "
      "SELECT w.user_message_id::text, n.n FROM (SELECT count(*) AS n FROM c) n LEFT JOIN w ON true",
      cast, claimed_by_another("c.id"), claimed_by_another("e.user_message_id"));
}

std::string touch_rows() {
  return "UPDATE message_embeddings e SET assistant_message_id = t.aid, source_version = t.sv, "
         "  updated_at = now() "
         "FROM unnest($3::uuid[], $4::uuid[], $5::timestamptz[], $6::text[]) AS t(id, aid, sv, sha) "
         "WHERE e.provider = $1 AND e.model = $2 AND e.user_message_id = t.id "
         "  AND (t.sha IS NULL OR e.content_sha256 = decode(t.sha, 'hex')) "
         "  AND NOT coalesce(e.source_version > t.sv, false) "
         "RETURNING e.user_message_id::text";
}

std::string upsert_failures() {
  return fmt::format(
      "WITH t AS (SELECT t.* FROM unnest($4::uuid[], $5::text[], $6::text[], $7::timestamptz[], "
      "  $8::boolean[]) AS t(id, reason, detail, sv, transient) JOIN messages m ON m.id = t.id), "
      "w AS (INSERT INTO embedding_failures AS f (provider, model, user_message_id, reason, detail, "
      "source_version, next_attempt_at) "
      "SELECT $1, $2, t.id, t.reason, t.detail, t.sv, "
      "  CASE WHEN t.transient THEN now() + ({0}) * interval '1 second' END "
      "FROM t WHERE NOT EXISTS (SELECT 1 FROM message_embeddings e WHERE e.provider = $1 "
      "  AND e.model = $2 AND e.user_message_id = t.id AND e.source_version > t.sv) AND NOT {2} "
      "ON CONFLICT (provider, model, user_message_id) DO UPDATE SET reason = excluded.reason, "
      "  detail = excluded.detail, source_version = excluded.source_version, attempts = f.attempts + 1, "
      "  last_failed_at = now(), "
      "  next_attempt_at = CASE WHEN excluded.next_attempt_at IS NOT NULL "
      "    THEN now() + ({1}) * interval '1 second' END "
      "WHERE NOT coalesce(f.source_version > excluded.source_version, false) "
      "RETURNING f.user_message_id) "
      "SELECT w.user_message_id::text, n.n FROM (SELECT count(*) AS n FROM t) n LEFT JOIN w ON true",
      transient_delay_seconds_sql("1"), transient_delay_seconds_sql("f.attempts + 1"),
      claimed_by_another("t.id"));
}

}  // namespace lens::store::postgres::sql
