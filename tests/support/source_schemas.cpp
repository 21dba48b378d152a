// The source schemas of issue 12's tests (see source_schemas.h): mappings, a deterministic corpus
// per schema, its expected exchanges, and a reference query that reads any mapped source.
#include "support/source_schemas.h"

#include <fmt/core.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>

#include "support/paths.h"

namespace lens::test::schemas {
namespace {

// splitmix64: a fixed sequence for a seed on every platform (std::*_distribution is not).
struct Random {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  int below(int n) { return static_cast<int>(next() % static_cast<std::uint64_t>(n)); }
  bool chance(int percent) { return below(100) < percent; }
};

// A bijection of 64-bit counters (splitmix's finaliser): distinct counters give distinct
// keys whose order differs from the counters' order.
std::uint64_t mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::string uuid_of(std::uint64_t n) {
  const std::uint64_t hi = mix(n * 2 + 1), lo = mix(n * 2 + 2);
  return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", hi >> 32, (hi >> 16) & 0xffff, hi & 0xffff,
                     lo >> 48, lo & 0xffffffffffffULL);
}

std::string text_key(char prefix, std::uint64_t n) {
  return fmt::format("{}-{:016x}", prefix, mix(n + 1));
}

std::string timestamp(std::int64_t seconds, int millis = 0) {
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

constexpr std::int64_t k_start = 1709280000;  // 2024-03-01T08:00:00Z

constexpr const char* k_words[] = {
    "derivative",  "integral",    "photosynthesis", "why",      "how",        "does",        "the",
    "a",           "cell",        "energy",         "it's",     "\"quoted\"", "naïve",       "日本語",
    "50%",         "back\\slash", "O'Brien",        "limit",    "proof",      "€",           "??",
    "chlorophyll", "matrix",      "vector",         "{braces}", "tab\there",  "line\nbreak", "ok",
    "thanks"};

std::string sentence(Random& r) {
  const int n = 2 + r.below(14);
  std::string s;
  for (int i = 0; i < n; ++i)
    s += (i ? " " : "") + std::string(k_words[r.below(static_cast<int>(std::size(k_words)))]);
  return s;
}

std::optional<std::string> content(Random& r) {
  if (r.chance(4)) return std::nullopt;
  if (r.chance(3)) return r.chance(50) ? std::string() : std::string("  \n\t ");
  return sentence(r);
}

bool ascii_blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); });
}

struct Roles {
  std::string user, assistant, other;  // other: "" when the schema has none
};
Roles roles_of(Schema s) {
  switch (s) {
    case Schema::a_qualified_bigint:
      return {"student", "tutor", "system"};
    case Schema::c_view_text_keys:
      return {"question", "answer", ""};
    case Schema::default_schema:
      return {"user", "assistant", "tool"};
    case Schema::b_reply_column:
      return {"user", "assistant", "system"};
  }
  return {};
}

// Conversations of user and assistant turns for the schemas whose reply is "next".
std::vector<Message> turns_corpus(const Fixture& f, const CorpusOptions& o) {
  Random r{o.seed * 7919 + static_cast<std::uint64_t>(f.schema)};
  const Roles roles = roles_of(f.schema);
  std::vector<Message> out;
  std::uint64_t counter = 0;
  for (int c = 0; c < o.conversations; ++c) {
    const std::string conversation = f.schema == Schema::a_qualified_bigint ? std::to_string(700001 + c)
                                     : f.schema == Schema::c_view_text_keys ? text_key('t', 1000 + c)
                                                                            : uuid_of(1'000'000 + c);
    // Conversations overlap in time, so the keyset order interleaves them.
    std::int64_t t = k_start + c * 173;
    const int n = 1 + r.below(10);
    std::string previous;
    for (int i = 0; i < n; ++i) {
      std::string role;
      if (i == 0 && !roles.other.empty() && r.chance(15)) {
        role = roles.other;
      } else if (previous == roles.user) {  // answered, unanswered, or something else first
        const int x = r.below(100);
        role = x < 70 ? roles.assistant : x < 88 || roles.other.empty() ? roles.user : roles.other;
      } else {
        role = r.chance(82) ? roles.user : roles.assistant;
      }
      if (!r.chance(10)) t += 1 + r.below(90);  // else: the previous message's time, id decides
      Message m;
      const std::uint64_t k = counter++;
      m.id = f.schema == Schema::a_qualified_bigint ? std::to_string(3'000'000'001ULL + k)
             : f.schema == Schema::c_view_text_keys ? text_key(role == roles.user ? 'q' : 'a', k)
                                                    : uuid_of(k);
      m.conversation_id = conversation;
      m.role = role;
      m.content = content(r);
      m.created_at = timestamp(t);
      if (f.schema != Schema::a_qualified_bigint && r.chance(12))
        m.updated_at = timestamp(t + 1 + r.below(3600));
      if (f.schema == Schema::a_qualified_bigint) m.deleted = r.chance(10);
      if (f.schema == Schema::c_view_text_keys) {
        static const char* const topics[] = {"calculus", "biology", "O'Neil's class", "算数"};
        static const char* const tutors[] = {"Ada", "Grace", "Émile"};
        if (role == roles.user && !r.chance(10)) m.topic = topics[r.below(4)];
        if (role == roles.assistant && !r.chance(10)) m.answered_by = tutors[r.below(3)];
      }
      previous = role;
      out.push_back(std::move(m));
    }
  }
  return out;
}

// Questions with zero to three replies each, linked by reply_to; a reply may come after later
// questions of its conversation, and a few assistant messages answer nothing.
std::vector<Message> replies_corpus(const Fixture& f, const CorpusOptions& o) {
  Random r{o.seed * 7919 + static_cast<std::uint64_t>(f.schema)};
  std::vector<Message> out;
  std::uint64_t counter = 0;
  auto add = [&](const std::string& conversation, const std::string& role, std::int64_t t) -> Message& {
    Message m;
    m.id = uuid_of(counter++);
    m.conversation_id = conversation;
    m.role = role;
    m.content = content(r);
    m.created_at = timestamp(t);
    if (r.chance(12)) m.updated_at = timestamp(t + 1 + r.below(3600));
    out.push_back(std::move(m));
    return out.back();
  };
  for (int c = 0; c < o.conversations; ++c) {
    const std::string conversation = uuid_of(1'000'000 + c);
    std::int64_t t = k_start + c * 173;
    if (r.chance(15)) add(conversation, "system", t);
    const int questions = 1 + r.below(5);
    for (int q = 0; q < questions; ++q) {
      t += 1 + r.below(60);
      const std::string question = add(conversation, "user", t).id;
      const int replies = r.below(4);
      for (int k = 0; k < replies; ++k) {
        // Equal times for some replies: their id decides which one is "first".
        Message& reply = add(conversation, "assistant", t + 1 + (r.chance(20) ? 0 : r.below(200)));
        reply.reply_to = question;
      }
      if (r.chance(8)) add(conversation, "assistant", t + 1 + r.below(100));  // answers nothing
    }
  }
  // Inserted in time order: a reply's parent exists before it (reply_to is a foreign key).
  std::stable_sort(out.begin(), out.end(),
                   [](const Message& a, const Message& b) { return a.created_at < b.created_at; });
  return out;
}

std::string literal(const std::optional<std::string>& v) {
  if (!v) return "NULL";
  std::string out = "'";
  for (char c : *v) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  return out + "'";
}

// INSERT statements of at most 200 rows each: `head` then the rows' value lists.
void insert_rows(std::string& sql, const std::string& head, const std::vector<std::string>& rows) {
  for (std::size_t i = 0; i < rows.size(); i += 200) {
    sql += head + " VALUES\n";
    for (std::size_t j = i; j < std::min(rows.size(), i + 200); ++j)
      sql += (j > i ? ",\n  (" : "  (") + rows[j] + ")";
    sql += ";\n";
  }
}

std::string column_value(const Message& m, const std::string& column) {
  if (column == "topic") return m.topic.value_or("");
  if (column == "answered_by") return m.answered_by.value_or("");
  return "";
}

}  // namespace

std::string_view name(Schema schema) {
  switch (schema) {
    case Schema::default_schema:
      return "default";
    case Schema::a_qualified_bigint:
      return "a_qualified_bigint";
    case Schema::b_reply_column:
      return "b_reply_column";
    case Schema::c_view_text_keys:
      return "c_view_text_keys";
  }
  return "";
}

std::string_view name(Dialect dialect) {
  return dialect == Dialect::sqlite ? "sqlite" : "postgres";
}

std::string create_sql(const Fixture& f) {
  std::ifstream in(
      fmt::format("{}/tests/support/schemas/{}.{}.sql", source_dir(), name(f.schema), name(f.dialect)));
  if (!in) return "";
  std::stringstream text;
  text << in.rdbuf();
  std::string sql = text.str();
  const std::string placeholder = "${source_schema}";
  for (std::size_t at; (at = sql.find(placeholder)) != std::string::npos;)
    sql.replace(at, placeholder.size(), core::quote_sql_name(f.source_schema));
  return sql;
}

std::vector<core::MappingEntry> mapping_entries(const Fixture& f) {
  using V = std::vector<std::string>;
  auto e = [](std::string key, core::MappingValue value) {
    return core::MappingEntry{"source." + std::move(key), std::move(value), "fixture"};
  };
  switch (f.schema) {
    case Schema::default_schema:
      return {};
    case Schema::a_qualified_bigint:
      return {e("messages", core::config_spelling(core::RelationName{f.source_schema, "chat_messages"})),
              e("id", std::string("message_no")),
              e("conversation_id", std::string("thread_no")),
              e("role", std::string("author_role")),
              e("content", std::string("body")),
              e("created_at", std::string("posted_at")),
              e("updated_at", std::string("")),
              e("user_roles", V{"student"}),
              e("assistant_roles", V{"tutor"}),
              e("filter", std::string("NOT is_deleted")),
              e("template", std::string("Student: {user}\n\nTutor: {assistant}")),
              e("template_no_reply", std::string("Student: {user}"))};
    case Schema::b_reply_column:
      return {e("messages", std::string("posts")), e("reply", std::string("column:reply_to"))};
    case Schema::c_view_text_keys:
      return {e("messages", std::string("thread_messages")),
              e("id", std::string("message_key")),
              e("conversation_id", std::string("thread_key")),
              e("role", std::string("kind")),
              e("content", std::string("Body")),
              e("created_at", std::string("sent_at")),
              e("updated_at", std::string("edited_at")),
              e("user_roles", V{"question"}),
              e("assistant_roles", V{"answer"}),
              e("template", std::string("[{user.topic}] {user}\n\n{assistant.answered_by}: {assistant}")),
              e("template_no_reply", std::string("[{user.topic}] {user}"))};
  }
  return {};
}

std::string toml_snippet(const Fixture& f) {
  std::string out = "[source]\n";
  for (const auto& e : mapping_entries(f))
    out += fmt::format("{} = {}\n", e.key.substr(e.key.find('.') + 1), core::toml_text(e.value));
  return out;
}

core::SourceMapping mapping(const Fixture& f) {
  auto m = core::make_source_mapping(mapping_entries(f));
  return m ? std::move(*m) : core::SourceMapping();
}

Corpus make_corpus(const Fixture& f, const CorpusOptions& o) {
  Corpus c;
  c.messages = f.schema == Schema::b_reply_column ? replies_corpus(f, o) : turns_corpus(f, o);
  c.expected = expected_exchanges(f, c.messages);
  return c;
}

std::string insert_sql(const Fixture& f, const std::vector<Message>& messages) {
  std::string sql = "BEGIN;\n";
  std::vector<std::string> rows;
  switch (f.schema) {
    case Schema::default_schema: {
      std::map<std::string, bool> conversations;
      for (const auto& m : messages)
        conversations[m.conversation_id] = true;
      for (const auto& [id, _] : conversations)
        rows.push_back(fmt::format("{}, {}, 'conversation', '2024-03-01T00:00:00.000Z'", literal(id),
                                   literal(uuid_of(9'000'000 + rows.size()))));
      insert_rows(sql, "INSERT INTO conversations (id, user_id, title, created_at)", rows);
      rows.clear();
      for (const auto& m : messages)
        rows.push_back(fmt::format("{}, {}, {}, {}, {}, {}", literal(m.id), literal(m.conversation_id),
                                   literal(m.role), literal(m.content), literal(m.created_at),
                                   literal(m.updated_at)));
      insert_rows(sql, "INSERT INTO messages (id, conversation_id, role, content, created_at, updated_at)",
                  rows);
      break;
    }
    case Schema::a_qualified_bigint: {
      const std::string table = core::quote_sql_name(core::RelationName{f.source_schema, "chat_messages"});
      for (const auto& m : messages)
        rows.push_back(fmt::format("{}, {}, {}, {}, {}, {}", m.id, m.conversation_id, literal(m.role),
                                   literal(m.content), literal(m.created_at), m.deleted ? "TRUE" : "FALSE"));
      // Explicit keys, so the corpus knows them; PostgreSQL's identity then continues after them.
      insert_rows(
          sql,
          fmt::format("INSERT INTO {} (message_no, thread_no, author_role, body, posted_at, is_deleted){}",
                      table, f.dialect == Dialect::postgres ? " OVERRIDING SYSTEM VALUE" : ""),
          rows);
      if (f.dialect == Dialect::postgres && !messages.empty()) {
        sql += fmt::format(
            "SELECT setval(pg_get_serial_sequence({}, 'message_no'), (SELECT max(message_no) FROM {}));\n",
            literal(table), table);
      }
      break;
    }
    case Schema::b_reply_column:
      for (const auto& m : messages)
        rows.push_back(fmt::format("{}, {}, {}, {}, {}, {}, {}", literal(m.id), literal(m.conversation_id),
                                   literal(m.role), literal(m.content), literal(m.created_at),
                                   literal(m.updated_at), literal(m.reply_to)));
      insert_rows(sql,
                  "INSERT INTO posts (id, conversation_id, role, content, created_at, updated_at, reply_to)",
                  rows);
      break;
    case Schema::c_view_text_keys: {
      std::vector<std::string> answers;
      for (const auto& m : messages) {
        auto& to = m.role == "question" ? rows : answers;
        to.push_back(fmt::format("{}, {}, {}, {}, {}, {}", literal(m.id), literal(m.conversation_id),
                                 literal(m.created_at), literal(m.updated_at), literal(m.content),
                                 literal(m.role == "question" ? m.topic : m.answered_by)));
      }
      insert_rows(sql,
                  "INSERT INTO questions (question_key, thread_key, asked_at, edited_at, question, topic)",
                  rows);
      insert_rows(sql,
                  "INSERT INTO answers (answer_key, thread_key, answered_at, edited_at, answer, answered_by)",
                  answers);
      break;
    }
  }
  return sql + "COMMIT;\n";
}

std::string load(Db& db, const Fixture& f, const std::vector<Message>& messages) {
  if (db.is_postgres() != (f.dialect == Dialect::postgres)) return "the fixture is for another dialect";
  const std::string ddl = create_sql(f);
  if (ddl.empty())
    return fmt::format("no file tests/support/schemas/{}.{}.sql", name(f.schema), name(f.dialect));
  if (auto e = db.exec(ddl); !e.empty()) return e;
  return db.exec(insert_sql(f, messages));
}

std::vector<core::Exchange> expected_exchanges(const Fixture& f, const std::vector<Message>& messages) {
  const core::SourceMapping m = mapping(f);
  auto has = [](const std::vector<std::string>& list, const std::string& v) {
    return std::find(list.begin(), list.end(), v) != list.end();
  };
  // (created_at, id) as the database orders them: bigint keys as numbers, others as text.
  const bool numeric = f.schema == Schema::a_qualified_bigint;
  auto before = [numeric](const Message* a, const Message* b) {
    if (a->created_at != b->created_at) return a->created_at < b->created_at;
    if (numeric) return std::stoll(a->id) < std::stoll(b->id);
    return a->id < b->id;
  };
  std::vector<const Message*> rows;  // those that pass the filter, in (created_at, id) order
  for (const auto& msg : messages) {
    if (!msg.deleted) rows.push_back(&msg);
  }
  std::sort(rows.begin(), rows.end(), before);
  const auto& users = m.user_roles().value;
  const auto& assistants = m.assistant_roles().value;

  std::vector<core::Exchange> out;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Message& u = *rows[i];
    if (!has(users, u.role) || !u.content || ascii_blank(*u.content)) continue;
    const Message* reply = nullptr;
    if (m.reply().value.kind == core::ReplyKind::next) {
      for (std::size_t j = i + 1; j < rows.size(); ++j) {
        const Message& n = *rows[j];
        if (n.conversation_id != u.conversation_id || (!has(users, n.role) && !has(assistants, n.role)))
          continue;
        if (has(assistants, n.role)) reply = &n;
        break;
      }
    } else if (m.reply().value.kind == core::ReplyKind::column) {
      for (const Message* n : rows) {  // in order: the first that answers u
        if (has(assistants, n->role) && n->reply_to == u.id) {
          reply = n;
          break;
        }
      }
    }
    core::Exchange ex;
    ex.user_message_id = u.id;
    ex.user_content = *u.content;
    for (const auto& column : m.user_columns())
      ex.user_columns[column] = column_value(u, column);
    if (reply) {
      ex.assistant_message_id = reply->id;
      ex.assistant_content = reply->content.value_or("");
      for (const auto& column : m.assistant_columns())
        ex.assistant_columns[column] = column_value(*reply, column);
    }
    out.push_back(std::move(ex));
  }
  return out;
}

std::string exchanges_query(const core::SourceMapping& m) {
  auto q = [](const std::string& name) { return core::quote_sql_name(name); };
  auto in_list = [](const std::vector<std::string>& values) {
    std::string out;
    for (const auto& v : values)
      out += (out.empty() ? "" : ", ") + literal(v);
    return out;
  };
  std::vector<std::string> both = m.user_roles().value;
  both.insert(both.end(), m.assistant_roles().value.begin(), m.assistant_roles().value.end());
  const std::string id = q(m.id().value), at = q(m.created_at().value), role = q(m.role().value);
  std::string reply;
  switch (m.reply().value.kind) {
    case core::ReplyKind::next:
      reply = fmt::format(
          "a.{id} = (SELECT n.{id} FROM m n WHERE n.{conv} = p.{conv} AND n.{role} IN ({both}) "
          "AND (n.{at}, n.{id}) > (p.{at}, p.{id}) ORDER BY n.{at}, n.{id} LIMIT 1) AND a.{role} IN "
          "({assistants})",
          fmt::arg("id", id), fmt::arg("conv", q(m.conversation_id().value)), fmt::arg("role", role),
          fmt::arg("both", in_list(both)), fmt::arg("at", at),
          fmt::arg("assistants", in_list(m.assistant_roles().value)));
      break;
    case core::ReplyKind::column:
      reply = fmt::format(
          "a.{id} = (SELECT n.{id} FROM m n WHERE n.{col} = p.{id} AND n.{role} IN ({assistants}) "
          "ORDER BY n.{at}, n.{id} LIMIT 1)",
          fmt::arg("id", id), fmt::arg("col", q(m.reply().value.column)), fmt::arg("role", role),
          fmt::arg("assistants", in_list(m.assistant_roles().value)), fmt::arg("at", at));
      break;
    case core::ReplyKind::none:
      reply = "1 = 0";
      break;
  }
  std::string columns;
  for (const auto& c : m.user_columns())
    columns += ", p." + q(c);
  for (const auto& c : m.assistant_columns())
    columns += ", a." + q(c);
  const std::string filter = m.filter().value.empty() ? "" : " WHERE (" + m.filter().value + ")";
  return fmt::format(
      "WITH m AS (SELECT * FROM {rel}{filter}) "
      "SELECT p.{id}, p.{content}, a.{id}, a.{content}{columns} FROM m p LEFT JOIN m a ON {reply} "
      "WHERE p.{role} IN ({users}) ORDER BY p.{at}, p.{id}",
      fmt::arg("rel", core::quote_sql_name(m.messages().value)), fmt::arg("filter", filter),
      fmt::arg("id", id), fmt::arg("content", q(m.content().value)), fmt::arg("columns", columns),
      fmt::arg("reply", reply), fmt::arg("role", role), fmt::arg("users", in_list(m.user_roles().value)),
      fmt::arg("at", at));
}

}  // namespace lens::test::schemas
