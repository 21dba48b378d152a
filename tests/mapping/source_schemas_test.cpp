// The issue-12 source schemas (tests/support/source_schemas.h) on real SQLite and PostgreSQL:
// each loads, its corpus has what the tests need, its [source] snippet reads back as its
// mapping, and a query written from the mapping alone finds exactly the exchanges the corpus
// expects.
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>

#include "cli/config_file.h"
#include "core/input_text.h"
#include "support/pg.h"
#include "support/process.h"
#include "support/source_schemas.h"
#include "support/sql.h"

namespace lens::test::schemas {
namespace {

bool ascii_blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); });
}

// A fixture's database, empty: a SQLite file in a folder of its own, or a PostgreSQL schema
// of its own (and, for (a), a second one that holds the source table).
struct Scratch {
  std::unique_ptr<TempDir> dir;
  std::unique_ptr<PgScratch> schema, source_schema;
  std::unique_ptr<Db> db;
  std::string error;
};

std::unique_ptr<Scratch> open(Fixture& f) {
  auto s = std::make_unique<Scratch>();
  if (f.dialect == Dialect::sqlite) {
    s->dir = std::make_unique<TempDir>("source_schemas");
    s->db = Db::open("sqlite:" + (*s->dir / "source.db"));
  } else {
    s->schema = std::make_unique<PgScratch>(PgServer::shared(), "map");
    s->source_schema = std::make_unique<PgScratch>(PgServer::shared(), "map_src");
    if (!s->schema->ok() || !s->source_schema->ok()) {
      s->error = s->schema->error() + s->source_schema->error();
      return s;
    }
    f.source_schema = s->source_schema->name();
    s->db = Db::open(s->schema->url());
  }
  if (!s->db) s->error = "cannot open the database";
  return s;
}

// The exchanges that exchanges_query finds in the database, blank questions left out.
std::vector<core::Exchange> read_exchanges(Db& db, const core::SourceMapping& m) {
  auto rows = db.query(exchanges_query(m));
  EXPECT_TRUE(rows) << db.last_error() << "\n" << exchanges_query(m);
  std::vector<core::Exchange> out;
  if (!rows) return out;
  const auto user_columns = m.user_columns(), assistant_columns = m.assistant_columns();
  for (const auto& r : *rows) {
    if (!r[1] || ascii_blank(*r[1])) continue;
    core::Exchange ex;
    ex.user_message_id = r[0].value_or("");
    ex.user_content = *r[1];
    ex.assistant_message_id = r[2];
    std::size_t c = 4;
    for (const auto& name : user_columns)
      ex.user_columns[name] = r[c++].value_or("");
    if (r[2]) {
      ex.assistant_content = r[3].value_or("");
      for (const auto& name : assistant_columns)
        ex.assistant_columns[name] = r[c++].value_or("");
    }
    out.push_back(std::move(ex));
  }
  return out;
}

void expect_same(const std::vector<core::Exchange>& got, const std::vector<core::Exchange>& want,
                 const core::SourceMapping& m) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].user_message_id, want[i].user_message_id) << i;
    EXPECT_EQ(got[i].assistant_message_id, want[i].assistant_message_id) << got[i].user_message_id;
    EXPECT_EQ(got[i].user_columns, want[i].user_columns) << got[i].user_message_id;
    EXPECT_EQ(got[i].assistant_columns, want[i].assistant_columns) << got[i].user_message_id;
    EXPECT_EQ(core::build_input_text(got[i], m), core::build_input_text(want[i], m))
        << got[i].user_message_id;
  }
}

class FixtureOn : public ::testing::TestWithParam<std::tuple<Schema, Dialect>> {};

// The mapping alone, through SQL, finds what the corpus expects: the fixtures' expectations
// agree with the databases' ordering, types, view and filter.
TEST_P(FixtureOn, QueryFromTheMappingFindsTheExpectedExchanges) {
  Fixture f{std::get<0>(GetParam()), std::get<1>(GetParam())};
  auto s = open(f);
  ASSERT_TRUE(s->error.empty()) << s->error;
  const Corpus corpus = make_corpus(f);
  ASSERT_EQ(load(*s->db, f, corpus.messages), "");
  const auto m = mapping(f);
  expect_same(read_exchanges(*s->db, m), corpus.expected, m);
}

// After edits, deletes and a new row the query and expected_exchanges still agree: the
// helpers stay usable for the tests that change a corpus between runs.
TEST_P(FixtureOn, ExpectationsFollowChangesToTheCorpus) {
  Fixture f{std::get<0>(GetParam()), std::get<1>(GetParam())};
  auto s = open(f);
  ASSERT_TRUE(s->error.empty()) << s->error;
  Corpus corpus = make_corpus(f);
  ASSERT_EQ(load(*s->db, f, corpus.messages), "");
  const auto m = mapping(f);
  // Delete the first reply of the first answered exchange: the next candidate (or none) answers.
  const auto answered =
      std::find_if(corpus.expected.begin(), corpus.expected.end(),
                   [](const core::Exchange& e) { return e.assistant_message_id.has_value(); });
  ASSERT_NE(answered, corpus.expected.end());
  const std::string gone = *answered->assistant_message_id;
  std::string table, key;
  switch (f.schema) {
    case Schema::default_schema:
      table = "messages", key = "id";
      break;
    case Schema::a_qualified_bigint:
      table = core::quote_sql_name(core::RelationName{f.source_schema, "chat_messages"}), key = "message_no";
      break;
    case Schema::b_reply_column:
      table = "posts", key = "id";
      break;
    case Schema::c_view_text_keys:
      table = "answers", key = "answer_key";
      break;
  }
  ASSERT_EQ(s->db->exec(fmt::format("DELETE FROM {} WHERE {} = '{}'", table, key, gone)), "");
  std::erase_if(corpus.messages, [&](const Message& msg) { return msg.id == gone; });
  expect_same(read_exchanges(*s->db, m), expected_exchanges(f, corpus.messages), m);
}

std::string param_name(const ::testing::TestParamInfo<FixtureOn::ParamType>& info) {
  return fmt::format("{}_{}", name(std::get<0>(info.param)), name(std::get<1>(info.param)));
}

INSTANTIATE_TEST_SUITE_P(Schemas, FixtureOn,
                         ::testing::Combine(::testing::ValuesIn(k_all_schemas),
                                            ::testing::Values(Dialect::sqlite, Dialect::postgres)),
                         param_name);

TEST(Fixtures, SnippetsReadBackAsTheirMapping) {
  for (Schema s : k_all_schemas) {
    const Fixture f{s, Dialect::postgres, "lens_src"};
    const TempDir dir("snippet");
    const std::string path = dir / "lens-embed.toml";
    std::ofstream(path) << toml_snippet(f);
    auto file = cli::read_config_file(path);
    ASSERT_TRUE(file) << file.error().message;
    auto m = core::make_source_mapping(file->mapping);
    ASSERT_TRUE(m) << m.error().message << "\n" << toml_snippet(f);
    const auto got = m->describe(), want = mapping(f).describe();
    for (std::size_t i = 0; i < got.size(); ++i)
      EXPECT_EQ(got[i].value, want[i].value) << name(s) << " " << got[i].key;
    EXPECT_EQ(m->fingerprint(), mapping(f).fingerprint());
  }
  EXPECT_TRUE(mapping({Schema::default_schema}).is_default());
  EXPECT_EQ(mapping({Schema::a_qualified_bigint, Dialect::sqlite}).messages().value,
            (core::RelationName{"main", "chat_messages"}));
}

TEST(Fixtures, CorporaAreDeterministicAndHoldTheCasesTheTestsNeed) {
  for (Schema s : k_all_schemas) {
    const Fixture f{s};
    const Corpus a = make_corpus(f), b = make_corpus(f);
    ASSERT_EQ(a.messages.size(), b.messages.size());
    for (std::size_t i = 0; i < a.messages.size(); ++i) {
      EXPECT_EQ(a.messages[i].id, b.messages[i].id);
      EXPECT_EQ(a.messages[i].content, b.messages[i].content);
      EXPECT_EQ(a.messages[i].created_at, b.messages[i].created_at);
    }
    const Corpus other = make_corpus(f, {.seed = 2});
    EXPECT_TRUE(other.messages.size() != a.messages.size() ||
                other.messages[0].content != a.messages[0].content ||
                other.messages.back().created_at != a.messages.back().created_at)
        << "seed 2 made the corpus of seed 1";

    const auto m = mapping(f);
    std::set<std::string> ids;
    int answered = 0, unanswered = 0, ineligible = 0, ties = 0, edited = 0;
    for (const auto& msg : a.messages) {
      EXPECT_TRUE(ids.insert(msg.id).second) << "duplicate id " << msg.id;
      if (msg.updated_at) ++edited;
      const bool user = msg.role == m.user_roles().value.front();
      if (user && (!msg.content || ascii_blank(*msg.content))) ++ineligible;
    }
    for (std::size_t i = 1; i < a.messages.size(); ++i)
      ties += a.messages[i].created_at == a.messages[i - 1].created_at;
    for (const auto& e : a.expected)
      (e.assistant_message_id ? answered : unanswered)++;
    EXPECT_GT(answered, 20) << name(s);
    EXPECT_GT(unanswered, 3) << name(s);
    EXPECT_GT(ineligible, 0) << name(s);
    EXPECT_GT(ties, 0) << name(s);
    EXPECT_EQ(edited > 0, m.has_updated_at()) << name(s);
    if (s == Schema::a_qualified_bigint) {
      EXPECT_GT(
          std::count_if(a.messages.begin(), a.messages.end(), [](const Message& x) { return x.deleted; }), 3);
    }
    if (s == Schema::b_reply_column) {
      std::map<std::string, int> replies;
      for (const auto& msg : a.messages) {
        if (msg.reply_to) ++replies[*msg.reply_to];
      }
      EXPECT_GT(std::count_if(replies.begin(), replies.end(), [](const auto& r) { return r.second > 1; }), 3);
    }
    if (s == Schema::c_view_text_keys) {
      const auto with_topic =
          std::count_if(a.expected.begin(), a.expected.end(),
                        [](const core::Exchange& e) { return !e.user_columns.at("topic").empty(); });
      EXPECT_GT(with_topic, 10);
    }
  }
}

}  // namespace
}  // namespace lens::test::schemas
