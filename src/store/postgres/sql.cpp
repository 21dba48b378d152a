// Query text of the PostgreSQL store that reads the source tables; see sql.h.
#include "store/postgres/sql.h"

#include <fmt/core.h>

#include "store/postgres/change_tracking.h"
#include "store/shared_sql.h"

namespace lens::store::postgres::sql {
namespace {

// Shared by every pending query: $1 provider, $2 model, $3 force, $4 only failures,
// $5 force_since. A failure holds an exchange back while it is of the same source version
// and either permanent (no next attempt) or not yet due. The statements are planned with
// their parameters (PQexecParams), so only one of the two branches is ever evaluated.
// The stored row `e`'s reply is still a reply candidate of the source. A newer stored version
// fences a write only then: a deleted (or filtered-out) reply takes its version with it, so
// the exchange read without it is legitimately older, not a late write.
std::string stored_reply_exists() {
  return "(e.assistant_message_id IS NULL OR EXISTS (SELECT 1 FROM @src r WHERE r.@id = "
         "e.assistant_message_id))";
}

// `changes`: also the exchanges the change queue names (change_tracking.h), for hashing.
std::string needs_work(const SourceSql& s, bool changes) {
  return "(($4::boolean AND EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = $1 "
         "  AND f.model = $2 AND f.user_message_id = p.@id)) "
         "OR (NOT $4::boolean "
         "AND ($3::boolean AND e.updated_at < $5::timestamptz OR e.user_message_id IS NULL "
         "  OR e.assistant_message_id IS DISTINCT FROM x.aid OR e.source_version IS DISTINCT FROM x.sv" +
         (changes ? " OR " + queued_condition(s) : std::string()) +
         ") "
         "AND NOT EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = $1 "
         "  AND f.model = $2 AND f.user_message_id = p.@id AND f.source_version IS NOT DISTINCT FROM x.sv "
         "  AND (f.next_attempt_at IS NULL OR f.next_attempt_at > now()))))";
}

constexpr const char* k_window_where =
    "($6::boolean IS NOT TRUE OR (p.@created, p.@id) > ($7::timestamptz, $8::@key)) "
    "AND (p.@created, p.@id) <= ($9::timestamptz, $10::@key)";
constexpr const char* k_ids_where = "p.@id = ANY($6::@key[])";

// ASCII white space, as the SQLite store's trim.
constexpr const char* k_non_blank =
    "p.@content IS NOT NULL AND btrim(p.@content, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) "
    "<> ''";

// The answer of p under the mapping's reply rule, and the exchange's version: newest
// coalesce(updated_at, created_at) of the user message and its answer. nx is the candidate
// ("next": the next user/assistant row of the conversation, walking the conversation-order
// index from p onwards; "column:": the first assistant row naming p), x.aid / x.acontent the
// answer when nx is an assistant's, x.sv the version. nx.lens_aN are the {assistant.COLUMN}s.
// A pattern, expanded with the statement around it.
std::string answer(const SourceSql& s) {
  std::string columns;
  int i = 0;
  for (const auto& c : s.mapping().assistant_columns())
    columns += fmt::format(", n.{} AS lens_a{}", core::quote_sql_name(c), i++);
  const auto& reply = s.mapping().reply().value;
  std::string where;
  switch (reply.kind) {
    case core::ReplyKind::next:
      where = "n.@conv = p.@conv AND n.@role@isrole AND (n.@created, n.@id) > (p.@created, p.@id)";
      break;
    case core::ReplyKind::column:
      where = fmt::format("n.{} = p.@id AND n.@role@isassistant", core::quote_sql_name(reply.column));
      break;
    case core::ReplyKind::none:
      where = "false";
      break;
  }
  return fmt::format(
      "LEFT JOIN LATERAL (SELECT n.@id AS id, n.@role AS role, n.@content AS content, "
      "  coalesce(n.@updated, n.@created) AS v{} "
      "  FROM @src n WHERE {} "
      "  ORDER BY n.@created, n.@id LIMIT 1) nx ON true "
      "CROSS JOIN LATERAL (SELECT CASE WHEN nx.role@isassistant THEN nx.id END AS aid, "
      "  CASE WHEN nx.role@isassistant THEN nx.content END AS acontent, "
      "  greatest(coalesce(p.@updated, p.@created), CASE WHEN nx.role@isassistant THEN nx.v END) AS sv) "
      "x ",
      columns, where);
}

std::string assistant_select(const SourceSql& s) {
  std::string out;
  for (std::size_t i = 0; i < s.mapping().assistant_columns().size(); ++i)
    out += fmt::format(", nx.lens_a{}::text", i);
  return out;
}

// An exchange in an unfinished batch of the pair is held by it, the way a claim holds one:
// no run of the pair takes it until the batch's results are applied or it is released
// (store/batch_ledger.h). $1 provider, $2 model.
constexpr const char* k_not_held =
    "NOT EXISTS (SELECT 1 FROM embedding_batch_items bi JOIN embedding_batches b "
    "ON b.batch_key = bi.batch_key WHERE bi.user_message_id = p.@id AND NOT b.done "
    "AND b.provider = $1 AND b.model = $2)";

}  // namespace

std::string ts(std::string_view expr) {
  return fmt::format("to_char(({}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')", expr);
}

// Bounding the scan (not the result) gives every page the same cost however much is
// already done; only the window's last key and its size come back.
std::string pending_window(const SourceSql& s, bool only_failures) {
  const char* keys =
      only_failures
          ? "SELECT m.@created AS created_at, m.@id AS id FROM embedding_failures f JOIN @src m "
            "ON m.@id = f.user_message_id WHERE f.provider = $5 AND f.model = $6 AND m.@role@isuser "
            "AND ($1::boolean IS NOT TRUE OR (m.@created, m.@id) > ($2::timestamptz, $3::@key)) "
            "ORDER BY m.@created, m.@id LIMIT $4"
          : "SELECT m.@created AS created_at, m.@id AS id FROM @src m WHERE m.@role@isuser AND "
            "($1::boolean IS NOT TRUE OR (m.@created, m.@id) > ($2::timestamptz, $3::@key)) "
            "ORDER BY m.@created, m.@id LIMIT $4";
  return s.expand(
      fmt::format("SELECT {}, id::text, n FROM (SELECT created_at, id, count(*) OVER () AS n FROM "
                  "({}) w) w2 ORDER BY created_at DESC, id DESC LIMIT 1",
                  ts("created_at"), keys));
}

// The existing row is looked up by primary key per user message (a LATERAL with LIMIT 1,
// which the planner cannot turn into a hash join): a page then costs O(page) however
// large message_embeddings is. A plain LEFT JOIN was planned as a hash join over every
// row of (provider, model) once the table grew (see docs/POSTGRES.md).
std::string pending(const SourceSql& s, PendingColumns columns, PendingWhere where, bool changes) {
  std::string select;
  switch (columns) {
    case PendingColumns::ids:
      select = "p.@id::text";
      break;
    case PendingColumns::full:
      select = fmt::format(
          "p.@id::text, p.@conv::text, {}, p.@content, x.aid::text, x.acontent, {}, "
          "e.content_sha256{}{}",
          ts("p.@created"), ts("x.sv"), s.user_columns("p", "::text"), assistant_select(s));
      break;
  }
  return s.expand(fmt::format(
      "SELECT {} FROM @src p {}"
      "LEFT JOIN LATERAL (SELECT e.user_message_id, e.assistant_message_id, e.source_version, e.updated_at, "
      "  e.content_sha256 FROM message_embeddings e "
      "  WHERE e.provider = $1 AND e.model = $2 AND e.user_message_id = p.@id LIMIT 1) e ON true "
      "WHERE p.@role@isuser AND {} AND {} AND {} AND {}{}",
      select, answer(s), where == PendingWhere::window ? k_window_where : k_ids_where, k_non_blank,
      needs_work(s, changes), k_not_held, " ORDER BY p.@created, p.@id"));
}

std::string batch_exchanges(const SourceSql& s) {
  return s.expand(fmt::format(
      "SELECT bi.custom_id, bi.input_index, bi.content_sha256, p.@id::text, p.@conv::text, {}, p.@content, "
      "  x.aid::text, x.acontent, {}{}{} "
      "FROM embedding_batch_items bi LEFT JOIN @src p ON p.@id = bi.user_message_id AND p.@role@isuser {}"
      "WHERE bi.batch_key = $1 ORDER BY bi.custom_id, bi.input_index",
      ts("p.@created"), ts("x.sv"), s.user_columns("p", "::text"), assistant_select(s), answer(s)));
}

std::string verify_page(const SourceSql& s) {
  return s.expand(fmt::format(
      "SELECT p.@id::text, p.@conv::text, {0}, p.@content, x.aid::text, x.acontent, {1}, e.content_sha256, "
      "  e.user_message_id IS NOT NULL, EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = $1 "
      "  AND f.model = $2 AND f.user_message_id = p.@id){2}{3} "
      "FROM @src p {4}"
      "LEFT JOIN LATERAL (SELECT e.user_message_id, e.content_sha256 FROM message_embeddings e "
      "  WHERE e.provider = $1 AND e.model = $2 AND e.user_message_id = p.@id LIMIT 1) e ON true "
      "WHERE p.@role@isuser AND {5} "
      "  AND ($3::boolean IS NOT TRUE OR (p.@created, p.@id) > ($4::timestamptz, $5::@key)) "
      "ORDER BY p.@created, p.@id LIMIT $6",
      ts("p.@created"), ts("x.sv"), s.user_columns("p", "::text"), assistant_select(s), answer(s),
      k_non_blank));
}

// Cheap by design (it sizes the progress bar, like the SQLite store): two primary-key
// anti-joins, no answer lookups; stale rows are not counted.
std::string count_pending(const SourceSql& s) {
  return s.expand(
      fmt::format("SELECT count(*) FROM @src p WHERE p.@role@isuser AND {} AND "
                  "($3::boolean OR NOT EXISTS (SELECT 1 FROM message_embeddings e "
                  "  WHERE e.provider = $1 AND e.model = $2 AND e.user_message_id = p.@id)) "
                  "AND NOT EXISTS (SELECT 1 FROM embedding_failures f "
                  "  WHERE f.provider = $1 AND f.model = $2 AND f.user_message_id = p.@id "
                  "  AND (f.next_attempt_at IS NULL OR f.next_attempt_at > now())) AND {}",
                  k_non_blank, k_not_held));
}

std::string count_failures(const SourceSql& s) {
  return s.expand(
      fmt::format("SELECT count(*) FROM embedding_failures f JOIN @src p ON p.@id = f.user_message_id "
                  "WHERE f.provider = $1 AND f.model = $2 AND p.@role@isuser AND {} AND {}",
                  k_non_blank, k_not_held));
}

std::string count_eligible(const SourceSql& s) {
  return s.expand(fmt::format("SELECT count(*) FROM @src p WHERE p.@role@isuser AND {}", k_non_blank));
}

std::string model_counts(const SourceSql& s) {
  return s.expand(fmt::format(
      "SELECT (SELECT count(*) FROM message_embeddings WHERE provider = $1 AND model = $2), "
      "(SELECT count(*) FROM @src p WHERE p.@role@isuser AND {0} AND NOT EXISTS "
      "  (SELECT 1 FROM message_embeddings e WHERE e.provider = $1 AND e.model = $2 AND "
      "e.user_message_id = p.@id) "
      "  AND NOT EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = $1 AND f.model = $2 "
      "  AND f.user_message_id = p.@id)), "
      "(SELECT count(*) FROM message_embeddings e JOIN @src p ON p.@id = e.user_message_id {1}"
      "  WHERE e.provider = $1 AND e.model = $2 AND (e.assistant_message_id IS DISTINCT FROM x.aid "
      "  OR e.source_version IS DISTINCT FROM x.sv))",
      k_non_blank, answer(s)));
}

// The keyset order walks messages_user_keyset (or the mapping's) from its start and stops
// at the first message without a row or a failure.
std::string oldest_unwritten(const SourceSql& s) {
  return s.expand(fmt::format(
      "SELECT {1}, extract(epoch FROM now() - p.@created)::float8 FROM @src p WHERE p.@role@isuser AND {0} "
      "AND NOT EXISTS (SELECT 1 FROM message_embeddings e WHERE e.provider = $1 AND e.model = $2 AND "
      "e.user_message_id = p.@id) "
      "AND NOT EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = $1 AND f.model = $2 "
      "AND f.user_message_id = p.@id) ORDER BY p.@created, p.@id LIMIT 1",
      k_non_blank, ts("p.@created")));
}

std::string search_hits(const SourceSql& s) {
  return s.expand(
      fmt::format("SELECT m.@id::text, e.assistant_message_id::text, m.@conv::text, {}, "
                  "left(m.@content, 400) FROM @rel m LEFT JOIN message_embeddings e "
                  "ON e.user_message_id = m.@id AND e.provider = $2 AND e.model = $3 "
                  "WHERE m.@id = ANY($1::@key[])",
                  ts("m.@created")));
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
std::string upsert_staged(const SourceSql& s, std::string_view cast) {
  return s.expand(fmt::format(
      "WITH c AS (SELECT s.* FROM (SELECT DISTINCT ON (user_message_id) user_message_id::@key AS id, "
      "  assistant_message_id::@key AS aid, content_sha256, token_count, truncated, dimensions, "
      "  embedding, source_version::timestamptz AS sv FROM lens_stage "
      "  ORDER BY user_message_id, ord DESC) s JOIN @rel m ON m.@id = s.id), "
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
      "WHERE NOT coalesce(e.source_version > excluded.source_version AND {3}, false) "
      "  AND (e.content_sha256 = excluded.content_sha256 OR NOT {2}) "
      "RETURNING e.user_message_id) "
      "SELECT w.user_message_id::text, n.n FROM (SELECT count(*) AS n FROM c) n LEFT JOIN w ON true",
      cast, claimed_by_another("c.id"), claimed_by_another("e.user_message_id"), stored_reply_exists()));
}

std::string touch_rows(const SourceSql& s) {
  return s.expand(
      "UPDATE message_embeddings e SET assistant_message_id = t.aid, source_version = t.sv, "
      "  updated_at = now() "
      "FROM unnest($3::@key[], $4::@key[], $5::timestamptz[], $6::text[]) AS t(id, aid, sv, sha) "
      "WHERE e.provider = $1 AND e.model = $2 AND e.user_message_id = t.id "
      "  AND (t.sha IS NULL OR e.content_sha256 = decode(t.sha, 'hex')) "
      "  AND NOT coalesce(e.source_version > t.sv AND " +
      stored_reply_exists() +
      ", false) "
      "RETURNING e.user_message_id::text");
}

std::string upsert_failures(const SourceSql& s) {
  return s.expand(fmt::format(
      "WITH t AS (SELECT t.* FROM unnest($4::@key[], $5::text[], $6::text[], $7::timestamptz[], "
      "  $8::boolean[]) AS t(id, reason, detail, sv, transient) JOIN @rel m ON m.@id = t.id), "
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
      claimed_by_another("t.id")));
}

}  // namespace lens::store::postgres::sql
