// `lens-embed verify` through the binary, on SQLite and PostgreSQL, on the default schema and
// on mapped schema (a) of tests/support (schema-qualified table, bigint keys, soft-delete
// filter, no updated_at), with the offline local-hash provider. Each planted defect is found
// with its row's id: content edited behind the tool's back (stale), a deleted, re-roled or
// soft-deleted user message (orphan), a deleted row (missing), a row of the wrong dimension,
// a vector altered in place (with --sample). Every repair the report prints is run as
// printed and makes its finding go away; at the end verify exits 0 again.
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "support/pg.h"
#include "support/process.h"
#include "support/source_schemas.h"
#include "support/sql.h"

namespace lens::test::schemas {
namespace {

using nlohmann::json;

class Scenario {
 public:
  explicit Scenario(Fixture f) : f_(f), dir_("verify_cmd") {
    if (f_.dialect == Dialect::sqlite) {
      url_ = "sqlite:" + (dir_ / "source.db");
    } else {
      schema_ = std::make_unique<PgScratch>(PgServer::shared(), "verify");
      source_schema_ = std::make_unique<PgScratch>(PgServer::shared(), "verify_src");
      if (!schema_->ok() || !source_schema_->ok()) {
        error_ = schema_->error() + source_schema_->error();
        return;
      }
      f_.source_schema = source_schema_->name();
      url_ = schema_->url();
    }
    db_ = Db::open(url_);
    if (!db_) error_ = "cannot open " + url_;
    std::ofstream(dir_ / "lens-embed.toml") << toml_snippet(f_);
  }

  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] Db& db() { return *db_; }
  [[nodiscard]] const Fixture& fixture() const { return f_; }
  [[nodiscard]] bool pg() const { return f_.dialect == Dialect::postgres; }
  [[nodiscard]] std::string toml() const { return dir_ / "lens-embed.toml"; }

  // lens-embed with `args`, then --db (never part of a printed repair).
  [[nodiscard]] Output lens(std::vector<std::string> args) const {
    args.insert(args.end(), {"--db", url_});
    return run_lens(args, dir_.path());
  }

  // verify --json with the provider and config a `run` of this scenario uses; its exit
  // status must be `expected_exit` (k_any: 0 or 1, a report either way).
  static constexpr int k_any = -1;
  [[nodiscard]] json verify(int expected_exit, std::vector<std::string> extra = {}) const {
    std::vector<std::string> args{"verify", "--provider", "local-hash", "--config", dir_ / "lens-embed.toml",
                                  "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    const Output o = lens(args);
    if (expected_exit == k_any)
      EXPECT_TRUE(o.exit_code == 0 || o.exit_code == 1) << o.out << o.err;
    else
      EXPECT_EQ(o.exit_code, expected_exit) << o.out << o.err;
    const json j = json::parse(o.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << o.out << o.err;
    return j.is_discarded() ? json::object() : j;
  }

  // Runs the printed repair of `finding`: its command as printed (plus --db), or its SQL.
  void repair(const json& finding) const {
    if (finding.contains("repair_sql")) {
      ASSERT_EQ(db_->exec(finding["repair_sql"].get<std::string>()), "");
      return;
    }
    std::istringstream words(finding.at("repair").get<std::string>());
    std::vector<std::string> args;
    for (std::string w; words >> w;)
      args.push_back(w);
    ASSERT_GE(args.size(), 2u);
    ASSERT_EQ(args[0], "lens-embed");
    args.erase(args.begin());
    const Output o = lens(args);
    ASSERT_EQ(o.exit_code, 0) << finding.dump() << "\n" << o.out << o.err;
  }

  // SQL text of user_message_id, for comparisons with the ids of a report.
  [[nodiscard]] std::string id_text() const {
    return pg() ? "user_message_id::text" : "CAST(user_message_id AS TEXT)";
  }

 private:
  Fixture f_;
  TempDir dir_;
  std::unique_ptr<PgScratch> schema_, source_schema_;
  std::string url_, error_;
  std::unique_ptr<Db> db_;
};

// The finding of `kind` in a report, or null.
json finding(const json& report, const std::string& kind) {
  for (const auto& f : report.value("findings", json::array()))
    if (f.value("kind", "") == kind) return f;
  return nullptr;
}

// The report has a finding of `kind` that names `id`.
void expect_found(const json& report, const std::string& kind, const std::string& id) {
  const json f = finding(report, kind);
  ASSERT_FALSE(f.is_null()) << kind << " not reported: " << report.dump(2);
  const auto ids = f.value("ids", std::vector<std::string>{});
  EXPECT_TRUE(std::set<std::string>(ids.begin(), ids.end()).contains(id))
      << kind << " " << id << ": " << f.dump();
  EXPECT_GE(f.value("count", 0), 1);
}

// The table holding user messages, its key and content columns, for edits behind the tool.
struct Source {
  std::string table, key, content;
};
Source source_of(const Fixture& f) {
  if (f.schema == Schema::a_qualified_bigint)
    return {fmt::format("\"{}\".chat_messages", f.source_schema), "message_no", "body"};
  return {"messages", "id", "content"};
}

class VerifyCommand : public ::testing::TestWithParam<std::tuple<Schema, Dialect>> {};

TEST_P(VerifyCommand, FindsEachPlantedDefectAndThePrintedRepairsFixThem) {
  Scenario s({std::get<0>(GetParam()), std::get<1>(GetParam())});
  ASSERT_EQ(s.error(), "");
  const Fixture& f = s.fixture();
  const Corpus corpus = make_corpus(f, {.conversations = 12, .seed = 7});
  ASSERT_EQ(load(s.db(), f, corpus.messages), "");
  {
    const Output init = s.lens({"init", "--config", s.toml()});
    ASSERT_EQ(init.exit_code, 0) << init.out << init.err;
  }
  // Not yet embedded: everything eligible is missing, and the repair is a plain run.
  {
    const json before = s.verify(1);
    const json missing = finding(before, "missing");
    ASSERT_FALSE(missing.is_null()) << before.dump(2);
    EXPECT_TRUE(missing.value("repair", "").starts_with("lens-embed run --config ")) << missing.dump();
    s.repair(missing);
  }
  // Clean: exit 0, with and without a sample.
  const json clean = s.verify(0);
  EXPECT_TRUE(clean.value("clean", false)) << clean.dump(2);
  EXPECT_GT(clean.value("rows", 0), 6);
  const json sampled = s.verify(0, {"--sample", "1000"});
  EXPECT_EQ(sampled["sample"].value("compared", 0), clean.value("rows", -1)) << sampled.dump(2);
  EXPECT_EQ(sampled["sample"].value("matched", 0), clean.value("rows", -1));

  auto rows = s.db().query(fmt::format("SELECT {} FROM message_embeddings ORDER BY 1 LIMIT 6", s.id_text()));
  ASSERT_TRUE(rows && rows->size() == 6) << s.db().last_error();
  std::vector<std::string> id;
  for (const auto& r : *rows)
    id.push_back(r[0].value_or(""));
  const Source src = source_of(f);
  const bool default_schema = f.schema == Schema::default_schema;

  // Phase 1: stale, orphan, missing.
  // Content edited behind the tool's back (updated_at left alone).
  ASSERT_EQ(s.db().exec(fmt::format("UPDATE {} SET {} = 'edited behind its back: ' || {} WHERE {} = '{}'",
                                    src.table, src.content, src.content, src.key, id[0])),
            "");
  // An orphan: SQLite deletes without enforcing the foreign key (a connection without the
  // pragma); PostgreSQL's cascade would delete the row, so there the message stops being a
  // user message; schema (a) soft-deletes it through its filter.
  std::string orphan_sql;
  if (!default_schema)
    orphan_sql = fmt::format("UPDATE {} SET is_deleted = {} WHERE message_no = {}", src.table,
                             s.pg() ? "true" : "1", id[1]);
  else if (s.pg())
    orphan_sql = fmt::format("UPDATE messages SET role = 'system' WHERE id = '{}'", id[1]);
  else
    orphan_sql = fmt::format("DELETE FROM messages WHERE id = '{}'", id[1]);
  ASSERT_EQ(s.db().exec(orphan_sql), "");
  // A missing row.
  ASSERT_EQ(s.db().exec(fmt::format("DELETE FROM message_embeddings WHERE {} = '{}'", s.id_text(), id[2])),
            "");

  const json phase1 = s.verify(1);
  expect_found(phase1, "stale", id[0]);
  expect_found(phase1, "orphan_rows", id[1]);
  expect_found(phase1, "missing", id[2]);
  EXPECT_TRUE(finding(phase1, "wrong_dimension").is_null()) << phase1.dump(2);
  EXPECT_TRUE(finding(phase1, "stale").value("repair", "").starts_with("lens-embed run --rehash "))
      << phase1.dump(2);
  // The orphan's repair: SQL where a foreign key should have done it, else `run`.
  EXPECT_EQ(finding(phase1, "orphan_rows").contains("repair_sql"), default_schema) << phase1.dump(2);
  // Each printed repair, as printed, in the printed order, makes its finding go away.
  for (const auto& found : phase1["findings"]) {
    const std::string kind = found.value("kind", "");
    s.repair(found);
    const json after = s.verify(Scenario::k_any);
    EXPECT_TRUE(finding(after, kind).is_null()) << "after the repair of " << kind << ": " << after.dump(2);
  }
  EXPECT_TRUE(s.verify(0).value("clean", false));

  // Phase 2: a row of the wrong dimension, and a vector altered in place (another row's
  // vector copied over it: a plain verify cannot see it, --sample does).
  const std::string wrong_size =
      s.pg() ? fmt::format("UPDATE message_embeddings SET dimensions = 3 WHERE {} = '{}'", s.id_text(), id[3])
             : fmt::format(
                   "UPDATE message_embeddings SET dimensions = 3, embedding = zeroblob(12) WHERE {} = '{}'",
                   s.id_text(), id[3]);
  ASSERT_EQ(s.db().exec(wrong_size), "");
  ASSERT_EQ(s.db().exec(fmt::format("UPDATE message_embeddings SET embedding = (SELECT embedding FROM "
                                    "message_embeddings WHERE {0} = '{1}') WHERE {0} = '{2}'",
                                    s.id_text(), id[5], id[4])),
            "");
  const json plain = s.verify(1);
  expect_found(plain, "wrong_dimension", id[3]);
  EXPECT_TRUE(finding(plain, "sample_mismatch").is_null()) << plain.dump(2);
  const json with_sample = s.verify(1, {"--sample", "1000"});
  expect_found(with_sample, "sample_mismatch", id[4]);
  expect_found(with_sample, "wrong_dimension", id[3]);
  const json mismatch = finding(with_sample, "sample_mismatch");
  EXPECT_TRUE(mismatch.value("repair", "").starts_with("lens-embed run --force ")) << mismatch.dump();
  // wrong_dimension comes first: its repair (--force) is the one run that accepts mixed sizes.
  ASSERT_EQ(with_sample["findings"][0].value("kind", ""), "wrong_dimension") << with_sample.dump(2);
  s.repair(with_sample["findings"][0]);
  const json repaired = s.verify(0, {"--sample", "1000"});
  EXPECT_TRUE(repaired.value("clean", false)) << repaired.dump(2);
  EXPECT_EQ(repaired["sample"].value("matched", -1), repaired["sample"].value("compared", -2));
}

// Read-only: verify on a SQLite file whose writer lock another run holds neither waits for
// it nor fails, and a database without lens-embed's tables is exit 2 naming `init`.
TEST(VerifyCommandSqlite, NeverTakesTheWriterLockAndNeedsInit) {
  TempDir dir("verify_lock");
  const std::string url = "sqlite:" + (dir / "lens.db");
  auto db = Db::open(url);
  ASSERT_TRUE(db);
  const Fixture f{Schema::default_schema, Dialect::sqlite};
  ASSERT_EQ(load(*db, f, make_corpus(f, {.conversations = 3, .seed = 3}).messages), "");
  const Output no_tables = run_lens({"verify", "--provider", "local-hash", "--db", url}, dir.path());
  EXPECT_EQ(no_tables.exit_code, 2) << no_tables.out << no_tables.err;
  EXPECT_NE(no_tables.err.find("lens-embed init"), std::string::npos) << no_tables.err;
  ASSERT_EQ(run_lens({"run", "--provider", "local-hash", "--quiet", "--db", url}, dir.path()).exit_code, 0);
  // Hold the writer lock as a run does (flock on <db>.lens-embed.lock).
  const int fd = ::open((dir / "lens.db.lens-embed.lock").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  const Output o =
      run_lens({"verify", "--provider", "local-hash", "--db", url}, dir.path(), {}, std::chrono::seconds(60));
  EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
  EXPECT_NE(o.out.find("clean"), std::string::npos) << o.out;
  ::close(fd);
}

std::string param_name(const ::testing::TestParamInfo<std::tuple<Schema, Dialect>>& info) {
  return fmt::format("{}_{}", name(std::get<0>(info.param)), name(std::get<1>(info.param)));
}

INSTANTIATE_TEST_SUITE_P(Schemas, VerifyCommand,
                         ::testing::Combine(::testing::Values(Schema::default_schema,
                                                              Schema::a_qualified_bigint),
                                            ::testing::Values(Dialect::sqlite, Dialect::postgres)),
                         param_name);

}  // namespace
}  // namespace lens::test::schemas
