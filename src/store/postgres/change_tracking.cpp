// Change tracking of the PostgreSQL store; see change_tracking.h.
#include "store/postgres/change_tracking.h"

#include <fmt/core.h>

#include <array>

#include "store/postgres/sql.h"

namespace lens::store::postgres {
namespace {

using util::ErrorCode;
using util::fail;
using util::Result;
using util::Status;

constexpr std::array<const char*, 3> k_triggers = {"lens_embed_track_insert", "lens_embed_track_update",
                                                   "lens_embed_track_delete"};

// The schema that holds lens-embed's tables ([output] schema, or where the search_path put
// them): the trigger function runs in the writer's session, whose search_path is its own.
Result<std::string> own_schema(Connection& conn) {
  auto r =
      conn.exec("reading lens-embed's schema",
                "SELECT quote_ident(n.nspname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.oid = to_regclass('message_embeddings')");
  if (!r) return std::unexpected(r.error());
  if (r->size() == 0)
    return fail(ErrorCode::configuration, "postgres: no lens-embed tables yet; run `lens-embed init` first");
  return r->text(0, 0);
}

// What a queue entry holds of a row of `rows` (a transition table).
std::string queue_insert(const SourceSql& source, const std::string& queue, const char* rows) {
  const auto& m = source.mapping();
  const auto& reply = m.reply().value;
  const std::string answers = reply.kind == core::ReplyKind::column
                                  ? core::quote_sql_name(reply.column) + "::text"
                                  : std::string("NULL::text");
  return fmt::format(
      "INSERT INTO {} (message_id, conversation_id, answers) SELECT {}::text, {}::text, {} FROM {};", queue,
      core::quote_sql_name(m.id().value), core::quote_sql_name(m.conversation_id().value), answers, rows);
}

std::string install_sql(const SourceSql& source, const std::string& schema) {
  const std::string queue = schema + "." + k_change_queue;
  const std::string function = schema + ".lens_embed_queue_changes()";
  const std::string rel = core::quote_sql_name(source.relation());
  // SECURITY DEFINER: the application's role writes the source, not lens-embed's schema.
  std::string sql = fmt::format(
      "CREATE TABLE IF NOT EXISTS {0} (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
      "message_id text, conversation_id text, answers text, pass text, "
      "queued_at timestamptz NOT NULL DEFAULT now());"
      "CREATE INDEX IF NOT EXISTS lens_embed_change_queue_message ON {0} (message_id);"
      "CREATE INDEX IF NOT EXISTS lens_embed_change_queue_conversation ON {0} (conversation_id);"
      "CREATE INDEX IF NOT EXISTS lens_embed_change_queue_answers ON {0} (answers) WHERE answers IS NOT NULL;"
      "CREATE INDEX IF NOT EXISTS lens_embed_change_queue_pass ON {0} (pass);"
      "CREATE OR REPLACE FUNCTION {1} RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
      "SET search_path = pg_catalog, pg_temp AS $fn$ BEGIN "
      "IF TG_OP IN ('INSERT', 'UPDATE') THEN {2} END IF; "
      "IF TG_OP IN ('UPDATE', 'DELETE') THEN {3} END IF; "
      "RETURN NULL; END $fn$;",
      queue, function, queue_insert(source, queue, "lens_new"), queue_insert(source, queue, "lens_old"));
  // One event per trigger: PostgreSQL allows transition tables only so.
  sql += fmt::format(
      "CREATE OR REPLACE TRIGGER {1} AFTER INSERT ON {0} REFERENCING NEW TABLE AS lens_new "
      "FOR EACH STATEMENT EXECUTE FUNCTION {4};"
      "CREATE OR REPLACE TRIGGER {2} AFTER UPDATE ON {0} REFERENCING OLD TABLE AS lens_old NEW TABLE AS "
      "lens_new "
      "FOR EACH STATEMENT EXECUTE FUNCTION {4};"
      "CREATE OR REPLACE TRIGGER {3} AFTER DELETE ON {0} REFERENCING OLD TABLE AS lens_old "
      "FOR EACH STATEMENT EXECUTE FUNCTION {4};",
      rel, k_triggers[0], k_triggers[1], k_triggers[2], function);
  return sql;
}

std::string remove_sql(const SourceSql& source, const std::string& schema) {
  std::string sql;
  for (const char* trigger : k_triggers)
    sql += fmt::format("DROP TRIGGER IF EXISTS {} ON {};", trigger, core::quote_sql_name(source.relation()));
  sql += fmt::format("DROP FUNCTION IF EXISTS {0}.lens_embed_queue_changes(); DROP TABLE IF EXISTS {0}.{1};",
                     schema, k_change_queue);
  return sql;
}

}  // namespace

Status set_change_tracking(Connection& conn, const SourceSql& source, bool on) {
  if (on && !source.is_table()) {
    const auto& messages = source.mapping().messages();
    return fail(
        ErrorCode::configuration,
        fmt::format("init --track-changes: {} ([source] messages, {}) is a view, and PostgreSQL puts "
                    "no statement triggers with transition tables on a view; map [source] updated_at "
                    "so that a run reads only what changed, or use `lens-embed run --rehash` (without "
                    "updated_at every run hashes every input)",
                    core::quote_sql_name(source.relation()), messages.source));
  }
  auto schema = own_schema(conn);
  if (!schema) return std::unexpected(schema.error());
  if (auto s = conn.exec_simple("changing change tracking", "BEGIN"); !s) return s;
  auto s = conn.exec_simple(on ? "installing change tracking" : "removing change tracking",
                            on ? install_sql(source, *schema) : remove_sql(source, *schema));
  if (!s) {
    (void)conn.exec_simple("changing change tracking", "ROLLBACK");
    return s;
  }
  return conn.exec_simple("changing change tracking", "COMMIT");
}

Result<ChangeTracking> read_change_tracking(Connection& conn, const SourceSql& source) {
  ChangeTracking out;
  auto r = conn.exec("reading change tracking",
                     "SELECT (SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = "
                     "ANY($2::text[])), to_regclass($3) IS NOT NULL",
                     Params()
                         .text(core::quote_sql_name(source.relation()))
                         .text(fmt::format("{{{},{},{}}}", k_triggers[0], k_triggers[1], k_triggers[2]))
                         .text(k_change_queue));
  if (!r) return std::unexpected(r.error());
  out.installed = r->integer(0, 0) == static_cast<std::int64_t>(k_triggers.size()) && r->boolean(0, 1);
  if (!r->boolean(0, 1)) return out;
  auto n = conn.exec("reading change tracking", fmt::format("SELECT count(*) FROM {}", k_change_queue));
  if (!n) return std::unexpected(n.error());
  out.queued = n->integer(0, 0);
  return out;
}

Status take_changes(Connection& conn, const std::string& pass) {
  auto r = conn.exec("taking queued changes",
                     fmt::format("UPDATE {} SET pass = $1 WHERE pass IS DISTINCT FROM $1", k_change_queue),
                     Params().text(pass));
  if (!r) return std::unexpected(r.error());
  return {};
}

Status drop_changes(Connection& conn, const std::string& pass) {
  auto r = conn.exec("dropping processed changes",
                     fmt::format("DELETE FROM {} WHERE pass = $1", k_change_queue), Params().text(pass));
  if (!r) return std::unexpected(r.error());
  return {};
}

std::string queued_condition(const SourceSql& source) {
  std::string sql =
      fmt::format("EXISTS (SELECT 1 FROM {} q WHERE q.message_id = p.@id::text)", k_change_queue);
  switch (source.mapping().reply().value.kind) {
    case core::ReplyKind::next:
      sql += fmt::format(" OR EXISTS (SELECT 1 FROM {} q WHERE q.conversation_id = p.@conv::text)",
                         k_change_queue);
      break;
    case core::ReplyKind::column:
      sql += fmt::format(" OR EXISTS (SELECT 1 FROM {} q WHERE q.answers = p.@id::text)", k_change_queue);
      break;
    case core::ReplyKind::none:
      break;
  }
  return sql;
}

namespace {

// The keys as a materialised CTE `k` (id of the key type), so that the plan starts from the
// queue and probes the source by key instead of filtering the keyset with a hashed subplan.
std::string queued_keys_cte(const SourceSql& source, const char* provider, const char* model) {
  std::string keys = fmt::format("SELECT q.message_id::@key AS id FROM {} q", k_change_queue);
  switch (source.mapping().reply().value.kind) {
    case core::ReplyKind::next: {
      // Every user message of a queued conversation: an edited, late or deleted reply changes
      // the input of the user message before it. Compared in the column's own type, so that
      // the conversation-order index serves it.
      const std::string type = source.column_type(source.mapping().conversation_id().value);
      const std::string in = type.empty() ? "c.@conv::text IN (SELECT q.conversation_id"
                                          : "c.@conv IN (SELECT q.conversation_id::" + type;
      keys += fmt::format(" UNION SELECT c.@id FROM @src c WHERE {} FROM {} q)", in, k_change_queue);
      break;
    }
    case core::ReplyKind::column:
      keys +=
          fmt::format(" UNION SELECT q.answers::@key FROM {} q WHERE q.answers IS NOT NULL", k_change_queue);
      break;
    case core::ReplyKind::none:
      break;
  }
  keys += fmt::format(
      " UNION SELECT f.user_message_id FROM embedding_failures f WHERE f.provider = {} AND f.model = {} "
      "AND f.next_attempt_at <= now()",
      provider, model);
  return "WITH k AS MATERIALIZED (" + keys + ") ";
}

}  // namespace

std::string queued_keys_page(const SourceSql& source) {
  return source.expand(queued_keys_cte(source, "$5", "$6") + "SELECT m.@id::text, " + sql::ts("m.@created") +
                       " FROM k JOIN @src m ON m.@id = k.id WHERE m.@role@isuser "
                       "AND ($1::boolean IS NOT TRUE OR (m.@created, m.@id) > ($2::timestamptz, $3::@key)) "
                       "ORDER BY m.@created, m.@id LIMIT $4");
}

std::string count_queued(const SourceSql& source) {
  return source.expand(queued_keys_cte(source, "$1", "$2") +
                       "SELECT count(*) FROM k JOIN @src m ON m.@id = k.id WHERE m.@role@isuser");
}

}  // namespace lens::store::postgres
