// Issue 12, [output] schema through the binary: on PostgreSQL lens-embed's own tables go in
// that schema (init creates it), every command works with it, and the source is still the
// relation the user's search_path finds, even when lens-embed's schema holds a table of the
// same name; on SQLite anything but "" or "main" is exit 2 naming the key and file:line.
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>

#include "support/pg.h"
#include "support/process.h"
#include "support/source_schemas.h"
#include "support/sql.h"

namespace lens::test::schemas {
namespace {

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// lens-embed's tables in `schema`, by name, comma-separated ("" when none).
std::string tables_in(Db& db, const std::string& schema) {
  return db
      .scalar(fmt::format("SELECT coalesce(string_agg(table_name, ',' ORDER BY table_name), '') FROM "
                          "information_schema.tables WHERE table_schema = '{}' AND (table_name LIKE "
                          "'embedding%' OR table_name LIKE '%embeddings' OR table_name LIKE 'lens_embed%')",
                          schema))
      .value_or("<error>");
}

long embedded(const Output& o) {
  std::smatch m;
  if (o.exit_code != 0 || !std::regex_search(o.out, m, std::regex("\"embedded\":([0-9]+)"))) return -1;
  return std::stol(m[1]);
}

TEST(OutputSchema, PostgresKeepsLensTablesInTheirSchemaAndEveryCommandWorks) {
  // The source: the default schema's tables in a scratch schema the URL's search_path names.
  PgScratch source(PgServer::shared(), "osrc");
  // lens-embed's schema: a fresh name, dropped again so that init has to create it.
  PgScratch output(PgServer::shared(), "oout");
  ASSERT_TRUE(source.ok() && output.ok()) << source.error() << output.error();
  auto db = Db::open(source.url());
  ASSERT_TRUE(db);
  ASSERT_EQ(db->exec("DROP SCHEMA " + output.name()), "");
  const Fixture f{Schema::default_schema, Dialect::postgres};
  const Corpus corpus = make_corpus(f);
  ASSERT_EQ(load(*db, f, corpus.messages), "");

  TempDir dir("output_schema");
  const std::string config = dir / "lens-embed.toml";
  std::ofstream(config) << "# test\n[output]\nschema = \"" << output.name() << "\"\n";
  const auto lens = [&](std::vector<std::string> args) {
    args.insert(args.end(), {"--db", source.url(), "--config", config});
    return run_lens(args, dir.path());
  };

  // Before init, a read-only command names the schema it looked in.
  const Output early = lens({"status"});
  EXPECT_EQ(early.exit_code, 2) << early.err;
  EXPECT_TRUE(contains(early.err, output.name()) && contains(early.err, "lens-embed init")) << early.err;

  const Output init = lens({"init"});
  ASSERT_EQ(init.exit_code, 0) << init.out << init.err;
  const std::string ours =
      "embedding_batch_items,embedding_batches,embedding_claims,embedding_failures,embedding_runs,"
      "lens_embed_input_definitions,"
      "lens_embed_schema_migrations,message_embeddings";
  EXPECT_EQ(tables_in(*db, output.name()), ours);
  EXPECT_EQ(tables_in(*db, source.name()), "") << "nothing of lens-embed's beside the source";
  EXPECT_EQ(lens({"init"}).exit_code, 0) << "init is idempotent";

  // A table named like the source in lens-embed's schema is never read instead of it.
  ASSERT_EQ(
      db->exec(fmt::format("CREATE TABLE {}.messages (LIKE {}.messages)", output.name(), source.name())), "");

  const Output run = lens({"run", "--provider", "local-hash", "--json", "--quiet"});
  EXPECT_EQ(embedded(run), static_cast<long>(corpus.expected.size())) << run.out << run.err;
  EXPECT_EQ(db->scalar(fmt::format("SELECT count(*) FROM {}.message_embeddings", output.name())),
            std::to_string(corpus.expected.size()));
  EXPECT_EQ(embedded(lens({"run", "--provider", "local-hash", "--json", "--quiet"})), 0);

  const Output status = lens({"status", "--json"});
  EXPECT_EQ(status.exit_code, 0) << status.out << status.err;
  EXPECT_TRUE(contains(status.out, fmt::format("\"embedded\":{}", corpus.expected.size()))) << status.out;
  const Output verify = lens({"verify", "--provider", "local-hash"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  const Output failures = lens({"failures"});
  EXPECT_EQ(failures.exit_code, 0) << failures.out << failures.err;
  const Output search = lens({"search", "--provider", "local-hash", "-k", "3", "--json", "photosynthesis"});
  EXPECT_EQ(search.exit_code, 0) << search.out << search.err;
  EXPECT_TRUE(contains(search.out, "user_message_id")) << search.out;
  const Output doctor = lens({"doctor", "--provider", "local-hash"});
  EXPECT_NE(doctor.exit_code, 2) << doctor.out << doctor.err;
  EXPECT_TRUE(contains(doctor.out, output.name())) << doctor.out;

  // Change tracking puts its queue beside lens-embed's tables, and an edit without
  // updated_at reaches the run through it.
  const Output track = lens({"init", "--track-changes"});
  ASSERT_EQ(track.exit_code, 0) << track.out << track.err;
  EXPECT_EQ(db->scalar(fmt::format("SELECT count(*) FROM information_schema.tables WHERE table_schema = '{}' "
                                   "AND table_name = 'lens_embed_change_queue'",
                                   output.name())),
            "1");
  ASSERT_EQ(db->exec(fmt::format("UPDATE messages SET content = 'edited' WHERE id = '{}'",
                                 corpus.expected[1].user_message_id)),
            "");
  EXPECT_EQ(embedded(lens({"run", "--provider", "local-hash", "--json", "--quiet"})), 1);

  // A deleted message's row goes (the foreign key crosses the schemas).
  ASSERT_EQ(db->exec(fmt::format("DELETE FROM messages WHERE id = '{}'", corpus.expected[0].user_message_id)),
            "");
  EXPECT_EQ(db->scalar(fmt::format("SELECT count(*) FROM {}.message_embeddings", output.name())),
            std::to_string(corpus.expected.size() - 1));
  EXPECT_EQ(lens({"verify", "--provider", "local-hash"}).exit_code, 0);
}

TEST(OutputSchema, SqliteRefusesAnyOtherSchemaNamingKeyAndLine) {
  TempDir dir("output_schema_sqlite");
  const std::string config = dir / "lens-embed.toml";
  const std::string file = dir / "lens.db";
  const std::vector<std::vector<std::string>> commands = {
      {"init"}, {"run", "--provider", "local-hash"}, {"status"}, {"verify"}, {"doctor"}};
  std::ofstream(config) << "# test\n[output]\nschema = \"lens\"\n";
  for (auto args : commands) {
    args.insert(args.end(), {"--db", "sqlite:" + file, "--config", config});
    const Output o = run_lens(args, dir.path());
    EXPECT_EQ(o.exit_code, 2) << args[0] << ": " << o.out << o.err;
    EXPECT_TRUE(contains(o.err, config + ":3: [output] schema = \"lens\"")) << args[0] << ": " << o.err;
    EXPECT_TRUE(contains(o.err, "remove the key or set it to \"main\"")) << o.err;
    EXPECT_FALSE(std::filesystem::exists(file)) << args[0];
  }
  // "main" is SQLite's own name for where the tables are: accepted.
  const Fixture f{Schema::default_schema, Dialect::sqlite};
  const Corpus corpus = make_corpus(f);
  auto db = Db::open("sqlite:" + file);
  ASSERT_TRUE(db);
  ASSERT_EQ(load(*db, f, corpus.messages), "");
  std::ofstream(config) << "# test\n[output]\nschema = \"main\"\n";
  const Output init = run_lens({"init", "--db", "sqlite:" + file, "--config", config}, dir.path());
  EXPECT_EQ(init.exit_code, 0) << init.err;
  const Output run = run_lens(
      {"run", "--provider", "local-hash", "--json", "--quiet", "--db", "sqlite:" + file, "--config", config},
      dir.path());
  EXPECT_EQ(embedded(run), static_cast<long>(corpus.expected.size())) << run.out << run.err;
}

}  // namespace
}  // namespace lens::test::schemas
