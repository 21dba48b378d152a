// Issue 12: `init` creates only lens-embed's own tables and prints the statements of the
// source indexes that are missing; `init --source-indexes` creates them; `doctor` checks,
// read-only, what the database needs for the mapping: exit 0 when all is there, 1 with the
// fix of each recommendation not met (a missing index planted by dropping it; no tables
// yet), 2 for a configuration error. Through the binary, on SQLite and PostgreSQL, for the
// default schema and the mapped schema (a).
#include <fmt/core.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <sstream>

#include "support/pg.h"
#include "support/process.h"
#include "support/source_schema.h"
#include "support/source_schemas.h"
#include "support/sql.h"

namespace lens::test::schemas {
namespace {

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

class Scenario {
 public:
  explicit Scenario(Fixture f) : f_(f), dir_("doctor") {
    if (f_.dialect == Dialect::sqlite) {
      url_ = "sqlite:" + (dir_ / "source.db");
    } else {
      schema_ = std::make_unique<PgScratch>(PgServer::shared(), "doc");
      source_schema_ = std::make_unique<PgScratch>(PgServer::shared(), "doc_src");
      if (!schema_->ok() || !source_schema_->ok()) {
        error_ = schema_->error() + source_schema_->error();
        return;
      }
      f_.source_schema = source_schema_->name();
      url_ = schema_->url();
    }
    db_ = Db::open(url_);
    if (!db_) error_ = "cannot open " + url_;
    write_toml("");
  }

  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] Db& db() { return *db_; }
  [[nodiscard]] const Fixture& fixture() const { return f_; }

  // lens-embed.toml: the fixture's [source], with the `key = value` line `extra` in place of
  // the fixture's line of that key.
  void write_toml(const std::string& extra) {
    const std::string key = extra.substr(0, extra.find(' '));
    std::istringstream in(toml_snippet(f_));
    std::string out;
    for (std::string line; std::getline(in, line);)
      if (key.empty() || !line.starts_with(key + " ")) out += line + "\n";
    std::ofstream(dir_ / "lens-embed.toml") << out << extra;
  }

  [[nodiscard]] Output lens(std::vector<std::string> args) const {
    args.insert(args.end(), {"--db", url_, "--config", dir_ / "lens-embed.toml"});
    return run_lens(args, dir_.path());
  }

  // The names of the indexes on the source relation.
  [[nodiscard]] std::string source_index_names() {
    const std::string sql =
        f_.dialect == Dialect::sqlite
            ? fmt::format(
                  "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_schema WHERE type = "
                  "'index' AND tbl_name = '{}' AND sql IS NOT NULL ORDER BY name)",
                  relation())
            : fmt::format(
                  "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE "
                  "tablename = '{}' AND schemaname = {} AND indexname NOT LIKE '%pkey'",
                  relation(),
                  f_.schema == Schema::a_qualified_bigint ? "'" + f_.source_schema + "'"
                                                          : "current_schema()");
    auto rows = db_->query(sql);
    EXPECT_TRUE(rows) << db_->last_error();
    return rows && !rows->empty() ? (*rows)[0][0].value_or("") : "";
  }
  [[nodiscard]] std::string relation() const {
    return f_.schema == Schema::a_qualified_bigint ? "chat_messages" : "messages";
  }
  [[nodiscard]] std::string qualified_index(const std::string& name) const {
    if (f_.schema == Schema::a_qualified_bigint && f_.dialect == Dialect::postgres)
      return fmt::format("\"{}\".{}", f_.source_schema, name);
    return name;
  }

 private:
  Fixture f_;
  TempDir dir_;
  std::unique_ptr<PgScratch> schema_, source_schema_;
  std::string url_, error_;
  std::unique_ptr<Db> db_;
};

class Doctor : public ::testing::TestWithParam<std::tuple<Schema, Dialect>> {};

TEST_P(Doctor, InitLeavesTheSourceAloneAndDoctorNamesEachGapWithItsFix) {
  Scenario s({std::get<0>(GetParam()), std::get<1>(GetParam())});
  ASSERT_EQ(s.error(), "");
  const Fixture& f = s.fixture();
  const Corpus corpus = make_corpus(f);
  ASSERT_EQ(load(s.db(), f, corpus.messages), "");
  const std::string keyset =
      f.schema == Schema::default_schema ? "messages_user_keyset" : "chat_messages_lens_keyset";
  const std::string order =
      f.schema == Schema::default_schema ? "messages_conversation_order" : "chat_messages_lens_order";

  // Before init: doctor says to run it (a recommendation, exit 1), and creates nothing.
  Output d = s.lens({"doctor"});
  EXPECT_EQ(d.exit_code, 1) << d.out << d.err;
  EXPECT_TRUE(contains(d.out, "lens-embed init")) << d.out;
  EXPECT_TRUE(contains(d.out, "source.messages")) << d.out;                // the mapping is printed first
  EXPECT_TRUE(contains(d.out, "every mapped column are there")) << d.out;  // checked before init

  // Plain init: lens-embed's tables only; it prints the statements of the missing indexes.
  Output init = s.lens({"init"});
  ASSERT_EQ(init.exit_code, 0) << init.err;
  EXPECT_EQ(s.source_index_names(), "");
  EXPECT_TRUE(contains(init.out, "CREATE INDEX")) << init.out;
  EXPECT_TRUE(contains(init.out, keyset)) << init.out;
  EXPECT_TRUE(contains(init.out, "init --source-indexes")) << init.out;
  if (f.dialect == Dialect::postgres) {
    EXPECT_TRUE(contains(init.out, "CONCURRENTLY")) << init.out;
  }

  d = s.lens({"doctor"});
  EXPECT_EQ(d.exit_code, 1) << d.out << d.err;
  EXPECT_TRUE(contains(d.out, "index " + keyset + ": MISSING")) << d.out;
  EXPECT_TRUE(contains(d.out, "index " + order + ": MISSING")) << d.out;
  EXPECT_TRUE(contains(d.out, "2 recommendations")) << d.out;
  EXPECT_TRUE(contains(d.out, "sample exchange: user message " + corpus.expected[0].user_message_id))
      << d.out;
  EXPECT_TRUE(
      contains(d.out, fmt::format("eligible user messages (passing the filter, content not blank): {}",
                                  corpus.expected.size())))
      << d.out;

  // The statement init printed works as printed (PostgreSQL: CONCURRENTLY, outside a
  // transaction), and then doctor is satisfied.
  const auto start = init.out.find("CREATE INDEX");
  ASSERT_NE(start, std::string::npos);
  std::string first_statement = init.out.substr(start, init.out.find(';', start) - start + 1);
  ASSERT_EQ(s.db().exec(first_statement), "") << first_statement;
  init = s.lens({"init", "--source-indexes"});
  ASSERT_EQ(init.exit_code, 0) << init.err;
  EXPECT_FALSE(contains(init.out, "CREATE INDEX")) << init.out;
  EXPECT_EQ(s.source_index_names(), order < keyset ? order + "," + keyset : keyset + "," + order);
  d = s.lens({"doctor"});
  EXPECT_EQ(d.exit_code, 0) << d.out << d.err;
  EXPECT_TRUE(contains(d.out, "all that the mapping needs is there")) << d.out;
  EXPECT_TRUE(contains(d.out, "privileges: everything a run reads and writes")) << d.out;

  // A missing index planted: exit 1, naming it with its statement.
  ASSERT_EQ(s.db().exec("DROP INDEX " + s.qualified_index(order)), "");
  d = s.lens({"doctor"});
  EXPECT_EQ(d.exit_code, 1) << d.out << d.err;
  EXPECT_TRUE(contains(d.out, "index " + order + ": MISSING")) << d.out;
  EXPECT_TRUE(contains(d.out, "index " + keyset + ": present")) << d.out;
  EXPECT_TRUE(contains(d.out, "1 recommendation:")) << d.out;

  // A template change shows as a changed input definition once a run recorded one.
  const Output run = s.lens({"run", "--provider", "local-hash", "--quiet"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  d = s.lens({"doctor", "--provider", "local-hash"});
  EXPECT_TRUE(contains(d.out, "unchanged since the last complete run")) << d.out;
  s.write_toml("template = \"Q: {user}\\nA: {assistant}\"\n");
  d = s.lens({"doctor", "--provider", "local-hash"});
  EXPECT_TRUE(contains(d.out, "CHANGED since the last complete run")) << d.out;

  // A configuration error: exit 2, naming the key.
  s.write_toml("content = \"no_such_column\"\n");
  d = s.lens({"doctor"});
  EXPECT_EQ(d.exit_code, 2) << d.out << d.err;
  EXPECT_TRUE(contains(d.err, "no_such_column")) << d.err;
}

// A role with less than docs/OPERATIONS.md grants: doctor names each missing privilege with
// the GRANT statement that gives it (exit 1); with all of them granted it is satisfied.
TEST(DoctorPrivileges, NamesTheGrantsARoleLacks) {
  const std::string role = fmt::format("lens_doctor_{}", getpid());
  {
    PgScratch scratch(PgServer::shared(), "docpriv", PgScratch::Kind::database);
    ASSERT_TRUE(scratch.ok()) << scratch.error();
    auto owner = Db::open(scratch.url());
    ASSERT_TRUE(owner);
    ASSERT_EQ(create_source_schema(*owner), "");
    TempDir dir("doctor_privileges");
    const Output init = run_lens({"init", "--db", scratch.url()}, dir.path());
    ASSERT_EQ(init.exit_code, 0) << init.err;
    ASSERT_EQ(
        owner->exec(fmt::format("CREATE ROLE {0} LOGIN PASSWORD 'pw-doctor'; GRANT USAGE ON SCHEMA public "
                                "TO {0}; GRANT SELECT ON conversations, messages, "
                                "lens_embed_schema_migrations TO {0}; GRANT SELECT ON message_embeddings "
                                "TO {0};",
                                role)),
        "");
    const std::string url = fmt::format("postgresql://{}:pw-doctor@127.0.0.1:{}/{}", role,
                                        PgServer::shared().port(), scratch.name());
    Output d = run_lens({"doctor", "--db", url}, dir.path());
    EXPECT_EQ(d.exit_code, 1) << d.out << d.err;
    EXPECT_TRUE(contains(d.out, "privileges: MISSING some")) << d.out;
    for (const std::string grant : {"GRANT INSERT, UPDATE, DELETE ON message_embeddings TO ",
                                    "GRANT SELECT, INSERT, UPDATE, DELETE ON embedding_failures TO ",
                                    "GRANT SELECT, INSERT, UPDATE ON embedding_runs TO ",
                                    "GRANT USAGE ON SEQUENCE embedding_runs_id_seq TO ",
                                    "GRANT SELECT, INSERT, UPDATE ON lens_embed_input_definitions TO "})
      EXPECT_TRUE(contains(d.out, grant + role + ";")) << grant << "\n" << d.out;
    EXPECT_FALSE(contains(d.out, "ON \"messages\"")) << d.out;  // the source is readable
    EXPECT_FALSE(contains(d.err, "pw-doctor")) << d.err;

    // What doctor printed, granted: nothing is missing any more.
    std::string grants;
    for (std::size_t at = d.out.find("GRANT "); at != std::string::npos; at = d.out.find("GRANT ", at + 1))
      grants += d.out.substr(at, d.out.find(';', at) - at + 1) + "\n";
    ASSERT_EQ(owner->exec(grants), "") << grants;
    d = run_lens({"doctor", "--db", url}, dir.path());
    EXPECT_EQ(d.exit_code, 0) << d.out << d.err;
    EXPECT_TRUE(contains(d.out, "privileges: everything a run reads and writes")) << d.out;
    (void)owner->exec(fmt::format("DROP OWNED BY {}", role));
  }
  auto admin = Db::open(PgServer::shared().url());
  if (admin) (void)admin->exec(fmt::format("DROP ROLE IF EXISTS {}", role));
}

std::string param_name(const ::testing::TestParamInfo<std::tuple<Schema, Dialect>>& info) {
  return fmt::format("{}_{}", name(std::get<0>(info.param)), name(std::get<1>(info.param)));
}

INSTANTIATE_TEST_SUITE_P(Schemas, Doctor,
                         ::testing::Combine(::testing::Values(Schema::default_schema,
                                                              Schema::a_qualified_bigint),
                                            ::testing::Values(Dialect::sqlite, Dialect::postgres)),
                         param_name);

}  // namespace
}  // namespace lens::test::schemas
