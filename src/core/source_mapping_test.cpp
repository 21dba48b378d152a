// Unit tests of the source mapping: defaults, every key's checks (each error names its key and
// source), names, reply rules, template placeholders, the rules between keys, the fingerprint.
#include "core/source_mapping.h"

#include <fmt/core.h>

#include <gtest/gtest.h>

#include <algorithm>

namespace lens::core {
namespace {

using Entries = std::vector<MappingEntry>;

MappingEntry text(const std::string& key, const std::string& value, const std::string& source = "t.toml:7") {
  return {key, value, source};
}
MappingEntry list(const std::string& key, std::vector<std::string> value,
                  const std::string& source = "t.toml:8") {
  return {key, std::move(value), source};
}

// The error of the mapping `entries` make; "" when they make one.
std::string error_of(const Entries& entries) {
  auto m = make_source_mapping(entries);
  return m ? "" : m.error().message;
}

// `e` alone is refused, with a message that names its key, its source and holds `expect`.
void expect_refused(const MappingEntry& e, const std::string& expect) {
  auto m = make_source_mapping({e});
  ASSERT_FALSE(m) << e.key << " was accepted";
  EXPECT_EQ(m.error().code, util::ErrorCode::invalid_argument);
  const std::string& msg = m.error().message;
  const auto dot = e.key.find('.');
  const std::string shown = fmt::format("[{}] {}", e.key.substr(0, dot), e.key.substr(dot + 1));
  EXPECT_NE(msg.find(shown), std::string::npos) << msg;
  EXPECT_NE(msg.find(e.source), std::string::npos) << msg;
  EXPECT_NE(msg.find(expect), std::string::npos) << "wanted \"" << expect << "\" in: " << msg;
}

TEST(SourceMapping, DefaultsAreTodaysSchema) {
  const SourceMapping m;
  EXPECT_EQ(m.messages().value, (RelationName{"", "messages"}));
  EXPECT_EQ(m.id().value, "id");
  EXPECT_EQ(m.conversation_id().value, "conversation_id");
  EXPECT_EQ(m.role().value, "role");
  EXPECT_EQ(m.content().value, "content");
  EXPECT_EQ(m.created_at().value, "created_at");
  EXPECT_EQ(m.updated_at().value, "updated_at");
  EXPECT_TRUE(m.has_updated_at());
  EXPECT_EQ(m.user_roles().value, std::vector<std::string>{"user"});
  EXPECT_EQ(m.assistant_roles().value, std::vector<std::string>{"assistant"});
  EXPECT_EQ(m.reply().value.kind, ReplyKind::next);
  EXPECT_EQ(m.filter().value, "");
  EXPECT_EQ(m.reply_template().value.text(), "{user}\n\n{assistant}");
  EXPECT_EQ(m.no_reply_template().value.text(), "{user}");
  EXPECT_EQ(m.id_type().value, KeyType::auto_detect);
  EXPECT_EQ(m.output_schema().value, "");
  EXPECT_TRUE(m.user_columns().empty());
  EXPECT_TRUE(m.assistant_columns().empty());
  for (const auto& line : m.describe())
    EXPECT_EQ(line.source, "default") << line.key;

  auto made = make_source_mapping({});
  ASSERT_TRUE(made) << made.error().message;
  EXPECT_EQ(made->fingerprint(), m.fingerprint());
}

TEST(SourceMapping, EveryKeyTakesAValueWithItsSource) {
  const Entries entries = {
      text("source.messages", "lens.chat_messages", "f:1"),
      text("source.id", "message_no", "f:2"),
      text("source.conversation_id", "thread_no", "f:3"),
      text("source.role", "author_role", "f:4"),
      text("source.content", "body", "f:5"),
      text("source.created_at", "posted_at", "f:6"),
      text("source.updated_at", "", "f:7"),
      list("source.user_roles", {"student", "learner", "student"}, "f:8"),
      list("source.assistant_roles", {"tutor"}, "f:9"),
      text("source.reply", "column:reply_to", "f:10"),
      text("source.filter", "NOT is_deleted AND (kind <> 'x;y')", "f:11"),
      text("source.template", "Q ({user.subject}): {user}\n\nA by {assistant.author}: {assistant}", "f:12"),
      text("source.template_no_reply", "Q ({user.\"Sub Ject\"}): {user}", "f:13"),
      text("source.id_type", "bigint", "f:14"),
      text("output.schema", "lens_embed", "f:15"),
  };
  auto m = make_source_mapping(entries);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->messages().value, (RelationName{"lens", "chat_messages"}));
  EXPECT_EQ(m->id().value, "message_no");
  EXPECT_EQ(m->conversation_id().value, "thread_no");
  EXPECT_EQ(m->role().value, "author_role");
  EXPECT_EQ(m->content().value, "body");
  EXPECT_EQ(m->created_at().value, "posted_at");
  EXPECT_FALSE(m->has_updated_at());
  EXPECT_EQ(m->user_roles().value, (std::vector<std::string>{"student", "learner"}));  // duplicate dropped
  EXPECT_EQ(m->assistant_roles().value, std::vector<std::string>{"tutor"});
  EXPECT_EQ(m->reply().value, (ReplyRule{ReplyKind::column, "reply_to"}));
  EXPECT_EQ(m->filter().value, "NOT is_deleted AND (kind <> 'x;y')");
  EXPECT_EQ(m->id_type().value, KeyType::bigint);
  EXPECT_EQ(m->output_schema().value, "lens_embed");
  EXPECT_EQ(m->user_columns(), (std::vector<std::string>{"Sub Ject", "subject"}));
  EXPECT_EQ(m->assistant_columns(), std::vector<std::string>{"author"});

  const auto lines = m->describe();
  ASSERT_EQ(lines.size(), mapping_keys().size());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i].key, mapping_keys()[i]);
    EXPECT_EQ(lines[i].source, "f:" + std::to_string(i + 1)) << lines[i].key;
  }
  EXPECT_EQ(lines[0].value, "\"lens.chat_messages\"");
  EXPECT_EQ(lines[7].value, "[\"student\", \"learner\"]");
  EXPECT_EQ(lines[12].value, "\"Q ({user.\\\"Sub Ject\\\"}): {user}\"");
}

TEST(SourceMapping, MisspelledKeysNameTheNearestKnownOne) {
  struct Case {
    std::string key, nearest;
  };
  // Every key, misspelled once.
  const Case cases[] = {{"source.mesages", "[source] messages"},
                        {"source.idd", "[source] id"},
                        {"source.conversationid", "[source] conversation_id"},
                        {"source.roles", "[source] role"},
                        {"source.contnet", "[source] content"},
                        {"source.created", "[source] created_at"},
                        {"source.updatedat", "[source] updated_at"},
                        {"source.user_role", "[source] user_roles"},
                        {"source.assistent_roles", "[source] assistant_roles"},
                        {"source.replies", "[source] reply"},
                        {"source.filters", "[source] filter"},
                        {"source.templat", "[source] template"},
                        {"source.template_noreply", "[source] template_no_reply"},
                        {"source.idtype", "[source] id_type"},
                        {"output.schemas", "[output] schema"},
                        {"source.schema", "[output] schema"}};
  for (const auto& c : cases) {
    const std::string msg = error_of({text(c.key, "x", "cfg.toml:3")});
    EXPECT_NE(msg.find("cfg.toml:3: unknown key"), std::string::npos) << msg;
    EXPECT_NE(msg.find("did you mean " + c.nearest + "?"), std::string::npos) << msg;
  }
  const std::string far = error_of({text("source.zzzzzzzzzz", "x")});
  EXPECT_NE(far.find("the keys of [source] are: messages, id,"), std::string::npos) << far;
}

TEST(SourceMapping, WrongTypesSayTheRightOne) {
  expect_refused({"source.content", NotText{"an integer"}, "c:1"}, "must be a string, not an integer");
  expect_refused({"source.user_roles", NotText{"a table"}, "c:2"}, "must be a list of strings");
  expect_refused(text("source.user_roles", "student", "c:3"),
                 "must be a list of strings, e.g. [\"student\"]");
  expect_refused(list("source.content", {"a"}, "c:4"), "must be a string, not a list");
  expect_refused({"output.schema", NotText{"a boolean"}, "c:5"}, "must be a string, not a boolean");
}

TEST(SourceMapping, ColumnKeysRefuseWhatCannotBeAName) {
  for (const char* key : {"source.id", "source.conversation_id", "source.role", "source.content",
                          "source.created_at", "source.updated_at"}) {
    expect_refused(text(key, "message id"), "'\"message id\"'");  // the fix: the quoted spelling
    expect_refused(text(key, "1st"), "is not a plain SQL name");
    expect_refused(text(key, "content; DROP TABLE x"), "is not a plain SQL name");
    expect_refused(text(key, "a.b"), "is not a plain SQL name");
    expect_refused(text(key, "\"unclosed"), "has no closing double quote");
    expect_refused(text(key, std::string(64, 'c')), "is 64 bytes long");
    expect_refused(text(key, "\"tab\there\""), "control character");
  }
  for (const char* key :
       {"source.id", "source.conversation_id", "source.role", "source.content", "source.created_at"}) {
    expect_refused(text(key, ""), "must name a column");
  }
  // Accepted: plain names as spelled (case kept), $ and non-ASCII letters, quoted names.
  auto m = make_source_mapping({text("source.content", "Body$2"), text("source.role", "rôle"),
                                text("source.id", "\"Message \"\"Id\"\"\""),
                                text("source.created_at", std::string(63, 'c'))});
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->content().value, "Body$2");
  EXPECT_EQ(m->role().value, "rôle");
  EXPECT_EQ(m->id().value, "Message \"Id\"");
  EXPECT_EQ(m->describe()[1].value, "\"\\\"Message \\\"\\\"Id\\\"\\\"\\\"\"");
}

TEST(SourceMapping, TableNamesMayBeSchemaQualified) {
  auto m = make_source_mapping({text("source.messages", "\"My Schema\".\"chat.log\"")});
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->messages().value, (RelationName{"My Schema", "chat.log"}));
  EXPECT_EQ(quote_sql_name(m->messages().value), "\"My Schema\".\"chat.log\"");
  EXPECT_EQ(config_spelling(m->messages().value), "\"My Schema\".\"chat.log\"");

  expect_refused(text("source.messages", ""), "must name the table or view");
  expect_refused(text("source.messages", "a.b.c"), "more than two parts");
  expect_refused(text("source.messages", "lens.chat messages"), "'lens.\"chat messages\"'");
  expect_refused(text("source.messages", "my schema.msgs"), "'\"my schema\".msgs'");
  expect_refused(text("source.messages", "lens."), "a name is missing");
  expect_refused(text("source.messages", "lens.1x"), "'lens.\"1x\"'");
}

TEST(SourceMapping, RoleListsAreNonEmptyAndDisjoint) {
  expect_refused(list("source.user_roles", {}), "must hold at least one role");
  expect_refused(list("source.assistant_roles", {"tutor", ""}), "holds an empty role");
  const std::string both = error_of({list("source.user_roles", {"user", "tutor"}, "c:8"),
                                     list("source.assistant_roles", {"tutor"}, "c:9")});
  EXPECT_NE(both.find("c:8: [source] user_roles and assistant_roles (c:9) both hold \"tutor\""),
            std::string::npos)
      << both;
  // Against a default: the default's source is named.
  const std::string with_default = error_of({list("source.user_roles", {"assistant"}, "c:8")});
  EXPECT_NE(with_default.find("(default) both hold \"assistant\""), std::string::npos) << with_default;
}

TEST(SourceMapping, ReplyRules) {
  for (const auto& [value, kind] : {std::pair{"next", ReplyKind::next}, std::pair{"none", ReplyKind::none},
                                    std::pair{"column:reply_to", ReplyKind::column}}) {
    auto m = make_source_mapping({text("source.reply", value)});
    ASSERT_TRUE(m) << m.error().message;
    EXPECT_EQ(m->reply().value.kind, kind);
  }
  auto quoted = make_source_mapping({text("source.reply", "column:\"Reply To\"")});
  ASSERT_TRUE(quoted) << quoted.error().message;
  EXPECT_EQ(quoted->reply().value.column, "Reply To");
  EXPECT_EQ(quoted->describe()[9].value, "\"column:\\\"Reply To\\\"\"");

  expect_refused(text("source.reply", "previous"), "use \"next\", \"none\" or \"column:NAME\"");
  expect_refused(text("source.reply", "Next"), "unknown reply rule");
  expect_refused(text("source.reply", "column:"), "the column after \"column:\"");
  expect_refused(text("source.reply", "column: reply_to"), "the column after \"column:\"");
  expect_refused(text("source.reply", "column:id"), "names the column of [source] id");
  expect_refused(text("source.reply", "column:content"), "names the column of [source] content");
  // Threads whose replies carry their question's id as the thread id.
  EXPECT_EQ(error_of({text("source.conversation_id", "thread_ts"), text("source.reply", "column:thread_ts")}),
            "");
}

TEST(SourceMapping, FilterIsOneSelfContainedCondition) {
  for (const char* ok : {"NOT deleted", "deleted_at IS NULL AND (kind = 'a)' OR kind = '(b')",
                         "\"Is Deleted\" = 0", "note <> 'it''s'", "id NOT IN (SELECT id FROM hidden)"}) {
    EXPECT_EQ(error_of({text("source.filter", ok)}), "") << ok;
  }
  expect_refused(text("source.filter", "NOT deleted; DROP TABLE messages"), "';' at position 12");
  expect_refused(text("source.filter", "NOT deleted -- hidden"), "a comment at position 13");
  expect_refused(text("source.filter", "NOT deleted /* x */"), "a comment");
  expect_refused(text("source.filter", "(NOT deleted"), "a '(' is never closed");
  expect_refused(text("source.filter", "NOT deleted) OR (1=1"), "the ')' at position 12 closes nothing");
  expect_refused(text("source.filter", "kind = 'x"), "never closed");
}

TEST(SourceMapping, TemplatePlaceholders) {
  auto m = make_source_mapping(
      {text("source.template", "{{literal}} {user} then }}{assistant}{assistant.\"x}y\"}"),
       text("source.template_no_reply", "{user.topic}: {user}")});
  ASSERT_TRUE(m) << m.error().message;
  const auto& parts = m->reply_template().value.parts();
  ASSERT_EQ(parts.size(), 5u);
  EXPECT_EQ(parts[0].literal, "{literal} ");
  EXPECT_EQ(parts[1].side, Side::user);
  EXPECT_EQ(parts[2].literal, " then }");
  EXPECT_EQ(parts[3].side, Side::assistant);
  EXPECT_EQ(parts[4].column, "x}y");
  EXPECT_EQ(m->assistant_columns(), std::vector<std::string>{"x}y"});
  EXPECT_EQ(m->user_columns(), std::vector<std::string>{"topic"});

  for (const char* key : {"source.template", "source.template_no_reply"}) {
    expect_refused(text(key, "{user} {usr}"), "unknown placeholder {usr} at position 8");
    expect_refused(text(key, "{User}"), "unknown placeholder {User}");
    expect_refused(text(key, "{}{user}"), "unknown placeholder {}");
    expect_refused(text(key, "{user"), "must end with '}' here");
    expect_refused(text(key, "{user} {"), "'{' at position 8 is never closed");
    expect_refused(text(key, "{user} }"), "'}' at position 8 closes nothing");
    expect_refused(text(key, "{user.}"), "a column name must follow \"user.\"");
    expect_refused(text(key, "{user.first name}"), "must end with '}' here");
    expect_refused(text(key, "{user.\"open}"), "no closing double quote");
    expect_refused(text(key, "{ user }"), "unknown placeholder { user }");
  }
}

TEST(SourceMapping, TemplatesHoldTheMessagesInOrder) {
  expect_refused(text("source.template", "{assistant}"), "has no {user}");
  expect_refused(text("source.template", "{user} {assistant.author}"), "has no {assistant}");
  expect_refused(text("source.template", "{assistant}\n{user}"), "puts {assistant} before {user}");
  expect_refused(text("source.template_no_reply", "{user.topic}"), "has no {user}");
  expect_refused(text("source.template_no_reply", "{user} {assistant}"), "names the assistant");
  expect_refused(text("source.template_no_reply", "{user} {assistant.x}"), "names the assistant");
  // A column of the assistant may come first; the contents keep their order.
  EXPECT_EQ(error_of({text("source.template", "[{assistant.author}] {user}\n\n{assistant}")}), "");
}

TEST(SourceMapping, ColumnsAreNotMappedTwice) {
  const std::string msg =
      error_of({text("source.content", "body", "c:5"), text("source.role", "body", "c:4")});
  EXPECT_NE(msg.find("[source] role and [source] content (c:5) both name the column \"body\""),
            std::string::npos)
      << msg;
  EXPECT_EQ(error_of({text("source.updated_at", ""), text("source.content", "updated_at")}), "");
}

TEST(SourceMapping, IdTypeAndOutputSchema) {
  for (const auto& [word, type] : {std::pair{"auto", KeyType::auto_detect}, std::pair{"uuid", KeyType::uuid},
                                   std::pair{"bigint", KeyType::bigint}, std::pair{"text", KeyType::text}}) {
    auto m = make_source_mapping({text("source.id_type", word)});
    ASSERT_TRUE(m) << m.error().message;
    EXPECT_EQ(m->id_type().value, type);
    EXPECT_EQ(to_string(type), word);
  }
  expect_refused(text("source.id_type", "integer"), "use \"auto\" (read from the database), \"uuid\"");
  expect_refused(text("output.schema", "lens embed"), "a schema name");
  expect_refused(text("output.schema", "a.b"), "is not a plain SQL name");
  EXPECT_EQ(error_of({text("output.schema", "")}), "");
}

TEST(SourceMapping, EveryProblemIsReportedAtOnce) {
  const std::string msg = error_of({text("source.contnet", "x", "c:1"), text("source.reply", "nope", "c:2"),
                                    text("source.template", "{user", "c:3")});
  EXPECT_NE(msg.find("3 problems in [source]/[output]:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\n  c:1: unknown key"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\n  c:2: [source] reply = \"nope\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("\n  c:3: [source] template = \"{user\""), std::string::npos) << msg;
}

TEST(SourceMapping, FingerprintFollowsWhatDecidesTheText) {
  const std::string base = SourceMapping().fingerprint();
  ASSERT_EQ(base.size(), 12u);
  // Pinned: the fingerprint is stored beside rows, so a change here marks every row of every
  // database as made under another mapping.
  EXPECT_EQ(base, "1e426de422fa");  // also computed outside lens-embed (Python hashlib)

  const Entries changes_text[] = {
      {text("source.template", "{user}\n{assistant}")},
      {text("source.template_no_reply", "Q: {user}")},
      {text("source.reply", "none")},
      {text("source.reply", "column:reply_to")},
      {text("source.filter", "NOT deleted")},
      {list("source.user_roles", {"user", "student"})},
      {list("source.assistant_roles", {"tutor"})},
  };
  std::vector<std::string> seen{base};
  for (const auto& entries : changes_text) {
    auto m = make_source_mapping(entries);
    ASSERT_TRUE(m) << m.error().message;
    EXPECT_EQ(std::find(seen.begin(), seen.end(), m->fingerprint()), seen.end()) << entries[0].key;
    seen.push_back(m->fingerprint());
  }
  const Entries keeps_text[] = {
      {text("source.messages", "lens.chat")},
      {text("source.content", "body"), text("source.id", "message_no")},
      {text("source.updated_at", "")},
      {text("source.id_type", "text"), text("output.schema", "lens")},
      {list("source.user_roles", {"user", "user"})},
  };
  for (const auto& entries : keeps_text) {
    auto m = make_source_mapping(entries);
    ASSERT_TRUE(m) << m.error().message;
    EXPECT_EQ(m->fingerprint(), base) << entries[0].key;
  }
  auto a = make_source_mapping({list("source.user_roles", {"a", "b"})});
  auto b = make_source_mapping({list("source.user_roles", {"b", "a"})});
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->fingerprint(), b->fingerprint());  // a list's order decides nothing
}

TEST(SourceMapping, DescribeEntriesShowsRawValuesEvenInvalidOnes) {
  const auto lines = describe_entries({text("source.content", "te xt", "c:5"),
                                       {"source.id", NotText{"an integer"}, "c:2"},
                                       text("source.bogus", "1", "c:9")});
  ASSERT_EQ(lines.size(), mapping_keys().size() + 1);
  EXPECT_EQ(lines[4].key, "source.content");
  EXPECT_EQ(lines[4].value, "\"te xt\"");
  EXPECT_EQ(lines[4].source, "c:5");
  EXPECT_EQ(lines[1].value, "(an integer)");
  EXPECT_EQ(lines[0].value, "\"messages\"");
  EXPECT_EQ(lines[0].source, "default");
  EXPECT_EQ(lines.back().key, "source.bogus");
  EXPECT_EQ(lines.back().source, "c:9, unknown key");
}

TEST(SourceMapping, TomlTextEscapes) {
  EXPECT_EQ(toml_text(std::string("a\"b\\c\nd\te\x01")), "\"a\\\"b\\\\c\\nd\\te\\u0001\"");
  EXPECT_EQ(toml_text(std::vector<std::string>{}), "[]");
}

}  // namespace
}  // namespace lens::core
