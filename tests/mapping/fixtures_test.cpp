// The issue-12 source schemas on real SQLite and PostgreSQL: each loads, its corpus has what
// the tests need, its [source] snippet reads back as its mapping, and a query written from
// the mapping alone finds exactly the exchanges the corpus expects.
#include <fmt/core.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>

#include "cli/config_file.h"
#include "core/input_text.h"
#include "fixtures.h"

namespace lens::test::mapping {
namespace {

using Row = std::vector<std::optional<std::string>>;

// The smallest SQL client: a script, and a query with text results. (tests/support's Db
// replaces it once that library is on main.)
class Sql {
 public:
  virtual ~Sql() = default;
  virtual std::string exec(const std::string& sql) = 0;  // "" or the error
  virtual std::optional<std::vector<Row>> query(const std::string& sql, std::string& error) = 0;
};

class SqliteSql final : public Sql {
 public:
  explicit SqliteSql(const std::string& path) { sqlite3_open(path.c_str(), &db_); }
  ~SqliteSql() override { sqlite3_close(db_); }
  std::string exec(const std::string& sql) override {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) == SQLITE_OK) return "";
    std::string e = err ? err : "error";
    sqlite3_free(err);
    return e;
  }
  std::optional<std::vector<Row>> query(const std::string& sql, std::string& error) override {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
      error = sqlite3_errmsg(db_);
      return std::nullopt;
    }
    std::vector<Row> rows;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      Row row;
      for (int i = 0; i < sqlite3_column_count(s); ++i) {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
        if (sqlite3_column_type(s, i) == SQLITE_NULL)
          row.emplace_back(std::nullopt);
        else
          row.emplace_back(std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s, i))));
      }
      rows.push_back(std::move(row));
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
      error = sqlite3_errmsg(db_);
      return std::nullopt;
    }
    return rows;
  }

 private:
  sqlite3* db_ = nullptr;
};

class PgSql final : public Sql {
 public:
  explicit PgSql(const std::string& url) : conn_(PQconnectdb(url.c_str())) {}
  ~PgSql() override { PQfinish(conn_); }
  [[nodiscard]] bool ok() const { return PQstatus(conn_) == CONNECTION_OK; }
  std::string exec(const std::string& sql) override {
    std::string error;
    return query(sql, error) ? "" : error;
  }
  std::optional<std::vector<Row>> query(const std::string& sql, std::string& error) override {
    PGresult* r = PQexec(conn_, sql.c_str());
    const auto status = PQresultStatus(r);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
      error = PQerrorMessage(conn_);
      PQclear(r);
      return std::nullopt;
    }
    std::vector<Row> rows;
    for (int i = 0; i < PQntuples(r); ++i) {
      Row row;
      for (int j = 0; j < PQnfields(r); ++j) {
        if (PQgetisnull(r, i, j))
          row.emplace_back(std::nullopt);
        else
          row.emplace_back(std::string(PQgetvalue(r, i, j), static_cast<std::size_t>(PQgetlength(r, i, j))));
      }
      rows.push_back(std::move(row));
    }
    PQclear(r);
    return rows;
  }

 private:
  PGconn* conn_;
};

// The ctest run's throwaway server (tests/store's lens_pg fixture writes its state file).
std::string pg_url() {
  const char* state = std::getenv("LENS_TEST_PG_STATE");
  if (!state) return "";
  std::ifstream in(state);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("PGTEST_URL=")) return line.substr(11);
  }
  return "";
}

std::string unique(const std::string& prefix) {
  static std::atomic<int> n{0};
  return fmt::format("{}_{}_{}", prefix, ::getpid(), n++);
}

bool ascii_blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); });
}

// A fixture's database: the schema created and the corpus loaded, on either backend.
struct Loaded {
  std::unique_ptr<Sql> sql;
  std::string error;
  std::function<void()> drop = [] {};
  ~Loaded() { drop(); }
};

void load(Loaded& db, const Fixture& f, const Corpus& corpus) {
  const std::string ddl = create_sql(f);
  ASSERT_FALSE(ddl.empty()) << "no SQL file for " << name(f.schema) << "." << name(f.dialect);
  ASSERT_EQ(db.sql->exec(ddl), "") << name(f.schema);
  ASSERT_EQ(db.sql->exec(insert_sql(f, corpus.messages)), "") << name(f.schema);
}

std::unique_ptr<Loaded> open(Fixture& f) {
  auto db = std::make_unique<Loaded>();
  if (f.dialect == Dialect::sqlite) {
    const auto path = std::filesystem::temp_directory_path() / (unique("lens_mapping") + ".db");
    db->sql = std::make_unique<SqliteSql>(path.string());
    db->drop = [path] { std::filesystem::remove(path); };
    return db;
  }
  const std::string url = pg_url();
  if (url.empty()) {
    db->error = "LENS_TEST_PG_STATE names no server (run through ctest: the lens_pg fixture starts it)";
    return db;
  }
  auto pg = std::make_unique<PgSql>(url);
  if (!pg->ok()) {
    db->error = "cannot connect to " + url;
    return db;
  }
  const std::string scratch = unique("lens_map");
  f.source_schema = unique("lens_src");
  if (auto e = pg->exec(fmt::format("CREATE SCHEMA {0}; SET search_path TO {0}", scratch)); !e.empty()) {
    db->error = e;
    return db;
  }
  db->sql = std::move(pg);
  db->drop = [url, scratch, source = f.source_schema] {
    PgSql cleanup(url);
    (void)cleanup.exec(
        fmt::format("DROP SCHEMA IF EXISTS {} CASCADE; DROP SCHEMA IF EXISTS {} CASCADE", scratch, source));
  };
  return db;
}

// The exchanges that exchanges_query finds in the database, blank questions left out.
std::vector<core::Exchange> read_exchanges(Sql& sql, const core::SourceMapping& m) {
  std::string error;
  auto rows = sql.query(exchanges_query(m), error);
  EXPECT_TRUE(rows) << error << "\n" << exchanges_query(m);
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
  auto db = open(f);
  ASSERT_TRUE(db->error.empty()) << db->error;
  const Corpus corpus = make_corpus(f);
  load(*db, f, corpus);
  if (HasFatalFailure()) return;
  const auto m = mapping(f);
  expect_same(read_exchanges(*db->sql, m), corpus.expected, m);
}

// After edits, deletes and a new row the query and expected_exchanges still agree: the
// helpers stay usable for the tests that change a corpus between runs.
TEST_P(FixtureOn, ExpectationsFollowChangesToTheCorpus) {
  Fixture f{std::get<0>(GetParam()), std::get<1>(GetParam())};
  auto db = open(f);
  ASSERT_TRUE(db->error.empty()) << db->error;
  Corpus corpus = make_corpus(f);
  load(*db, f, corpus);
  if (HasFatalFailure()) return;
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
  ASSERT_EQ(db->sql->exec(fmt::format("DELETE FROM {} WHERE {} = '{}'", table, key, gone)), "");
  std::erase_if(corpus.messages, [&](const Message& msg) { return msg.id == gone; });
  expect_same(read_exchanges(*db->sql, m), expected_exchanges(f, corpus.messages), m);
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
    const auto path = std::filesystem::temp_directory_path() / (unique("lens_mapping_snippet") + ".toml");
    std::ofstream(path) << toml_snippet(f);
    auto file = cli::read_config_file(path.string());
    ASSERT_TRUE(file) << file.error().message;
    auto m = core::make_source_mapping(file->mapping);
    ASSERT_TRUE(m) << m.error().message << "\n" << toml_snippet(f);
    const auto got = m->describe(), want = mapping(f).describe();
    for (std::size_t i = 0; i < got.size(); ++i)
      EXPECT_EQ(got[i].value, want[i].value) << name(s) << " " << got[i].key;
    EXPECT_EQ(m->fingerprint(), mapping(f).fingerprint());
    std::filesystem::remove(path);
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
}  // namespace lens::test::mapping
