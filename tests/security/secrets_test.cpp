// Secrets never leak: lens-embed runs through provider faults, a refused key, refused
// and unreachable databases with a known API key and a known database password, and
// neither appears in stdout, stderr, the --log-file, the runs table or the failures table.
#include <gtest/gtest.h>

#include <fmt/core.h>
#include <algorithm>
#include <filesystem>
#include <fstream>

#include "support/corpus.h"
#include "support/paths.h"
#include "support/pg.h"
#include "support/process.h"
#include "support/source_schema.h"
#include "support/sql.h"
#include "support/stand_in.h"

namespace {

namespace fs = std::filesystem;
using lens::test::Db;

constexpr const char* k_api_key = "sk-proj-LEAKCANARY-4f9e2d7c1b8a6e3f5d0c";
constexpr const char* k_db_password = "pw-LEAKCANARY-7b3e9f1d5c2a";
constexpr const char* k_role = "lens_app";

// Every fragment of a secret long enough to identify it: catches partial masking.
void expect_no_secret(const std::string& haystack, const std::string& secret, const std::string& where) {
  for (std::size_t n : {secret.size(), std::size_t{12}}) {
    for (std::size_t at = 0; at + n <= secret.size(); at += 4) {
      const std::string piece = secret.substr(at, n);
      EXPECT_EQ(haystack.find(piece), std::string::npos)
          << "\"" << piece << "\" of a secret appears in " << where << ":\n"
          << haystack.substr(haystack.find(piece) > 200 ? haystack.find(piece) - 200 : 0, 400);
    }
  }
}

class Secrets : public ::testing::Test {
 protected:
  void SetUp() override {
    lens::test::CorpusOptions co;
    co.exchanges = 300;
    co.p_poison = 0.05;  // some inputs fail: their failure rows carry provider messages
    corpus_ = lens::test::make_corpus(co);
  }
  void TearDown() override {
    if (HasFailure()) dir_.keep();
  }

  // lens-embed with the key in the environment; stdout+stderr+log collected in `seen_`.
  int lens(std::vector<std::string> args, const std::string& key = k_api_key) {
    args.insert(args.end(), {"--verbose", "--log-file", dir_ / "lens.log"});
    lens::test::Env env;
    if (!key.empty()) env["SUPERMIND_API_KEY"] = key;  // empty: from .env
    const auto o = lens::test::run_lens(args, dir_.path(), env);
    seen_ += "\n--- " + args[0] + " stdout:\n" + o.out + "\n--- stderr:\n" + o.err;
    return o.exit_code;
  }

  std::vector<std::string> run_args(const std::string& db, int port, std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"run", "--db", db};
    for (const auto& x :
         lens::test::supermind_args(fmt::format("http://127.0.0.1:{}/v1", port), "text-embedding-3-small"))
      a.push_back(x);
    a.insert(a.end(), {"--dimensions", "16", "--timeout", "2", "--batch-size", "16"});
    if (std::find(extra.begin(), extra.end(), "--max-attempts") == extra.end())
      a.insert(a.end(), {"--max-attempts", "3"});
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  static lens::stand_in::StandInOptions faulty(const std::string& key) {
    lens::stand_in::StandInOptions so;
    so.api_key = key;
    so.reject_marker = lens::test::k_poison_marker;
    so.p_500 = 0.1;
    so.p_malformed = 0.05;
    so.p_reset = 0.05;
    so.p_429 = 0.05;
    so.retry_after_headers = true;
    return so;
  }

  // Drives lens-embed through faults and refusals against `db` (a URL with the password
  // when PostgreSQL). Returns false when setup failed.
  void exercise(const std::string& db) {
    lens::test::StandIn good(faulty(k_api_key));
    ASSERT_TRUE(good.ok());
    const int port = good.port();
    EXPECT_EQ(lens({"init", "--db", db}), 0) << seen_;
    EXPECT_EQ(lens(run_args(db, port, {"--limit", "100"})), 0) << seen_;
    EXPECT_EQ(lens(run_args(db, port, {"--json"})), 0) << seen_;
    EXPECT_EQ(lens({"status", "--db", db, "--json"}), 0) << seen_;
    EXPECT_EQ(lens({"status", "--db", db}), 0) << seen_;
    EXPECT_EQ(lens({"failures", "--db", db}), 0) << seen_;
    EXPECT_EQ(lens({"config", "--db", db, "--provider", "supermind", "--json"}), 0) << seen_;
    EXPECT_EQ(lens({"config", "--db", db, "--provider", "supermind"}), 0) << seen_;
    // The server wants another key: it echoes ours back masked, as OpenAI does.
    lens::test::StandIn other(faulty("sk-another-key-entirely-0000"));
    const int other_port = other.port();
    EXPECT_NE(lens(run_args(db, other_port, {"--force", "--limit", "20"})), 0) << seen_;
    // A provider that is not there at all (its requests end as recorded failures, so the
    // exit status may be 0: only what it prints matters here).
    (void)lens(run_args(db, 1, {"--force", "--limit", "20", "--max-attempts", "1"}));
    // The key also arrives through .env (not only the environment).
    std::ofstream(dir_ / ".env") << "SUPERMIND_API_KEY=" << k_api_key << "\n";
    EXPECT_EQ(lens({"failures", "--db", db, "--retry", "--provider", "supermind", "--base-url",
                    fmt::format("http://127.0.0.1:{}/v1", port), "--model", "text-embedding-3-small",
                    "--dimensions", "16"},
                   ""),
              0)
        << seen_;
    fs::remove(dir_ / ".env");
  }

  void scan(Db& db) {
    const std::string log = lens::test::slurp(dir_ / "lens.log");
    EXPECT_FALSE(log.empty()) << "--log-file wrote nothing";
    const std::string runs = db.dump("SELECT * FROM embedding_runs");
    const std::string failures = db.dump("SELECT * FROM embedding_failures");
    EXPECT_NE(runs.find("supermind"), std::string::npos) << "the runs table is empty: " << runs;
    EXPECT_NE(failures.find("context_length"), std::string::npos) << "no failure rows to scan: " << failures;
    for (const char* secret : {k_api_key, k_db_password}) {
      expect_no_secret(seen_, secret, "stdout/stderr");
      expect_no_secret(log, secret, "the log file");
      expect_no_secret(runs, secret, "embedding_runs");
      expect_no_secret(failures, secret, "embedding_failures");
    }
  }

  lens::test::TempDir dir_{"secrets"};
  lens::test::Corpus corpus_;
  std::string seen_;
};

TEST_F(Secrets, SqliteApiKeyNeverAppears) {
  const std::string db = "sqlite:" + dir_ / "lens.db";
  {
    auto h = Db::open(db);
    ASSERT_EQ(lens::test::create_source_schema(*h), "");
    ASSERT_EQ(lens({"init", "--db", db}), 0) << seen_;
    ASSERT_EQ(h->insert(corpus_.messages), "");
  }
  exercise(db);
  auto h = Db::open(db);
  scan(*h);
}

TEST_F(Secrets, PostgresPasswordAndApiKeyNeverAppear) {
  const auto server = lens::test::PgServer::start(dir_ / "pg.env");
  ASSERT_TRUE(server->ok()) << server->error();
  lens::test::PgServer& pg = *server;
  {
    auto admin = Db::open(pg.url());
    ASSERT_EQ(
        admin->exec(fmt::format("CREATE ROLE {} LOGIN PASSWORD '{}'; GRANT CREATE ON SCHEMA public TO {};",
                                k_role, k_db_password, k_role)),
        "");
  }
  ASSERT_TRUE(pg.require_passwords());
  const std::string url =
      fmt::format("postgresql://{}:{}@127.0.0.1:{}/postgres", k_role, k_db_password, pg.port());
  {
    // Password authentication is really on: a wrong password is refused.
    auto wrong = Db::open(fmt::format("postgresql://{}:wrong@127.0.0.1:{}/postgres", k_role, pg.port()));
    EXPECT_FALSE(wrong->scalar("SELECT 1")) << "the server accepted a wrong password: not a password test";
  }
  {
    auto h = Db::open(url);
    ASSERT_EQ(lens::test::create_source_schema(*h), "");  // the role owns them, as before
    ASSERT_EQ(lens({"init", "--db", url}), 0) << seen_;
    ASSERT_EQ(h->insert(corpus_.messages), "");
  }
  exercise(url);
  // The database refuses the password, or is not there: the URL is in the arguments.
  const std::string wrong_pw =
      fmt::format("postgresql://{}:{}x@127.0.0.1:{}/postgres", k_role, k_db_password, pg.port());
  EXPECT_NE(lens({"status", "--db", wrong_pw}), 0) << seen_;
  EXPECT_NE(lens({"run", "--db", wrong_pw, "--provider", "local-hash"}), 0) << seen_;
  const std::string nowhere =
      fmt::format("postgresql://{}:{}@127.0.0.1:1/postgres?connect_timeout=2", k_role, k_db_password);
  EXPECT_NE(lens({"run", "--db", nowhere, "--provider", "local-hash"}), 0) << seen_;
  // The password also arrives the Lens compose way (POSTGRES_* variables).
  {
    const auto o = lens::test::run_lens({"status", "--verbose", "--log-file", dir_ / "lens.log"}, dir_.path(),
                                        {{"POSTGRES_HOST", "127.0.0.1"},
                                         {"POSTGRES_PORT", std::to_string(pg.port())},
                                         {"POSTGRES_USER", k_role},
                                         {"POSTGRES_PASSWORD", std::string(k_db_password) + "x"},
                                         {"POSTGRES_DB", "postgres"}});
    EXPECT_NE(o.exit_code, 0);
    seen_ += o.out + o.err;
  }
  auto h = Db::open(url);
  scan(*h);
}

}  // namespace

namespace {

// docs/OPERATIONS.md's least-privilege role: the owner runs `init`, then lens-embed runs
// with SELECT on the sources and DML on its own tables only. Fails until migrate() stops
// issuing DDL (CREATE TABLE IF NOT EXISTS, the trigger) on an up-to-date schema.
TEST(Privileges, LeastPrivilegeRoleFromOperationsMdCanRunAndReport) {
  lens::test::TempDir dir("privileges");
  const auto server = lens::test::PgServer::start(dir / "pg.env");
  ASSERT_TRUE(server->ok()) << server->error();
  const lens::test::PgServer& pg = *server;
  {
    auto owner = Db::open(pg.url());
    ASSERT_EQ(lens::test::create_source_schema(*owner), "");
  }
  auto init = lens::test::run_lens({"init", "--db", pg.url()}, dir.path());
  ASSERT_EQ(init.exit_code, 0) << init.err;
  {
    auto owner = Db::open(pg.url());
    lens::test::CorpusOptions co;
    co.exchanges = 50;
    ASSERT_EQ(owner->insert(lens::test::make_corpus(co).messages), "");
    ASSERT_EQ(owner->exec(R"sql(
      CREATE ROLE lens_embed LOGIN PASSWORD 'pw-least';
      GRANT USAGE ON SCHEMA public TO lens_embed;
      GRANT SELECT ON conversations, messages TO lens_embed;
      GRANT SELECT, INSERT, UPDATE, DELETE ON message_embeddings, embedding_failures TO lens_embed;
      GRANT SELECT, INSERT, UPDATE, DELETE ON embedding_claims TO lens_embed;
      GRANT SELECT, INSERT, UPDATE ON embedding_runs TO lens_embed;
      GRANT USAGE ON SEQUENCE embedding_runs_id_seq TO lens_embed;
      GRANT SELECT, INSERT, UPDATE ON lens_embed_input_definitions TO lens_embed;
      GRANT SELECT, INSERT, UPDATE ON embedding_batches TO lens_embed;
      GRANT SELECT, INSERT ON embedding_batch_items TO lens_embed;
      GRANT SELECT ON lens_embed_schema_migrations TO lens_embed;)sql"),
              "");
  }
  const std::string url = fmt::format("postgresql://lens_embed:pw-least@127.0.0.1:{}/postgres", pg.port());
  auto run = lens::test::run_lens({"run", "--db", url, "--provider", "local-hash", "--json"}, dir.path());
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  auto status = lens::test::run_lens({"status", "--db", url}, dir.path());
  EXPECT_EQ(status.exit_code, 0) << status.out << status.err;
  auto owner = Db::open(pg.url());
  EXPECT_EQ(owner->scalar("SELECT count(*) FROM message_embeddings"), "50");
  if (::testing::Test::HasFailure()) dir.keep();
}

}  // namespace
