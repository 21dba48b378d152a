// The commands' honest outcomes through the real binary (issue 11, items 1 and 4-10):
// exit codes that mean one thing, errors on stderr naming their source, --version and
// unknown commands, read-only commands that create nothing, failures --retry that retries
// exactly the recorded failures under their own pairs, one size per (provider, model),
// search on what exists, --follow as one quiet run, local-hash without zero vectors, and
// run --no-wait.
#include <gtest/gtest.h>

#include <signal.h>

#include <fmt/core.h>
#include <fmt/format.h>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "support/paths.h"
#include "support/pg.h"
#include "support/process.h"
#include "support/source_schema.h"
#include "support/sql.h"
#include "support/stand_in.h"

namespace {

namespace test = lens::test;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* k_key = "sk-commands-test-key-0000";

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class Commands : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure()) dir_.keep();
  }
  test::Output lens(const std::vector<std::string>& args, test::Env env = {}) {
    env.emplace("SUPERMIND_API_KEY", k_key);
    return test::run_lens(args, dir_.path(), env);
  }
  void generate(int conversations) {
    const auto r = test::run(
        {test::sample_corpus_binary(), "--sqlite", db_, "--conversations", std::to_string(conversations)},
        dir_.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  test::Db& sql() {
    if (!sql_) sql_ = test::Db::open("sqlite:" + db_);
    return *sql_;
  }
  long long count(const std::string& q) {
    const auto v = sql().scalar(q);
    EXPECT_TRUE(v) << sql().last_error() << "\n" << q;
    return v && !v->empty() ? std::stoll(*v) : -1;
  }
  // The folder's files, without the run-N.out/.err that test::run keeps there.
  std::set<std::string> files() const {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_.path())) {
      const auto name = e.path().filename().string();
      if (!name.starts_with("run-")) out.insert(name);
    }
    return out;
  }
  static lens::stand_in::StandInOptions stand_in(const std::string& marker = "") {
    lens::stand_in::StandInOptions o;
    o.api_key = k_key;
    o.default_dimensions = 16;
    o.reject_marker = marker;
    return o;
  }

  test::TempDir dir_{"commands"};
  std::string db_ = dir_ / "lens.db";
  std::unique_ptr<test::Db> sql_;
};

// ---- exit codes, --version, unknown commands --------------------------------------------

TEST_F(Commands, VersionHelpAndUnknownCommands) {
  for (const auto& args : {std::vector<std::string>{"--version"}, std::vector<std::string>{"version"}}) {
    const auto o = lens(args);
    EXPECT_EQ(o.exit_code, 0) << o.err;
    EXPECT_TRUE(o.out.starts_with("lens-embed ")) << o.out;
  }
  const auto help = lens({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* line : {"Exit status:", "  0  every eligible exchange is embedded or permanently failed",
                           "  1  stopped early or left work undone", "  2  usage or configuration"})
    EXPECT_TRUE(contains(help.out, line)) << help.out;
  EXPECT_TRUE(contains(lens({"run", "--help"}).out, "Exit status:"));

  const auto typo = lens({"stauts"});
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_EQ(typo.out, "");
  EXPECT_TRUE(contains(typo.err, "unknown command \"stauts\" (did you mean \"status\"?)")) << typo.err;
  EXPECT_TRUE(contains(
      typo.err, "init, run, status, batches, failures, verify, search, tokens, config, doctor, version"))
      << typo.err;
  const auto none = lens({});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_TRUE(contains(none.err, "a command is required: init, run")) << none.err;
}

// Every bad setting: exit 2 before anything is opened or sent, the error on stderr naming
// where the value came from, nothing on stdout.
TEST_F(Commands, EachBadConfigurationNamesItsSource) {
  test::StandIn provider(stand_in());
  ASSERT_TRUE(provider.ok());
  struct Case {
    std::vector<std::string> args;
    test::Env env;
    std::string toml, dotenv;
    std::vector<std::string> expected;  // parts of stderr
  };
  const std::vector<std::string> remote = {"run", "--provider", "supermind", "--base-url",
                                           provider.base_url()};
  auto with = [&](std::vector<std::string> extra) {
    auto a = remote;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  const Case cases[] = {
      {{"run"},
       {{"LENS_BATCH_SIZE", "-3"}},
       "",
       "",
       {"--batch-size -3 (from env LENS_BATCH_SIZE): must be 1..2048"}},
      {{"run"},
       {{"LENS_CONCURRENCY", "many"}},
       "",
       "",
       {"\"many\" from env LENS_CONCURRENCY is not a whole number"}},
      {{"run"},
       {{"LENS_UNAVAILABLE_AFTER", "0"}},
       "",
       "",
       {"--unavailable-after 0 (from env LENS_UNAVAILABLE_AFTER)"}},
      {{"run"}, {}, "", "LENS_MAX_ATTEMPTS=0\n", {"--max-attempts 0 (from .env:1)"}},
      {{"run"}, {}, "", "LENS_MODEL=x\nthis is not an assignment\n", {".env:2"}},
      {{"run"},
       {},
       "[database]\nurl = \"sqlite:lens.db\"\n[defaults]\nbach_size = 3\n",
       "",
       {"lens-embed.toml:4: unknown key \"bach_size\" in [defaults]; the nearest known one is "
        "\"batch_size\""}},
      {{"status"},
       {},
       "[models.\"mine\"]\nmodel = \"text-embedding-3-small\"\ndimensions = -3\n[defaults]\nmodel = "
       "\"mine\"\n",
       "",
       {"[models.\"mine\"] dimensions -3 (from lens-embed.toml:3)"}},
      {{"run"}, {}, "[defaults]\ntimeout_seconds = -1\n", "", {"--timeout -1 (from lens-embed.toml:2)"}},
      {with({"--model", "text-embedding-3-large", "--dimensions", "5000"}),
       {},
       "",
       "",
       {"--dimensions 5000 (from flag --dimensions): text-embedding-3-large gives 1..3072 dimensions"}},
      {with({"--model", "text-embedding-ada-002"}),
       {{"LENS_DIMENSIONS", "256"}},
       "",
       "",
       {"(from env LENS_DIMENSIONS): text-embedding-ada-002 gives only 1536 dimensions"}},
      {{"run", "--provider", "local-hash", "--dimensions", "70000"},
       {},
       "",
       "",
       {"local-hash-v1 gives 1..65536"}},
  };
  for (const auto& c : cases) {
    fs::remove(dir_ / "lens-embed.toml");
    fs::remove(dir_ / ".env");
    if (!c.toml.empty()) std::ofstream(dir_ / "lens-embed.toml") << c.toml;
    if (!c.dotenv.empty()) std::ofstream(dir_ / ".env") << c.dotenv;
    const auto o = lens(c.args, c.env);
    EXPECT_EQ(o.exit_code, 2) << o.err;
    EXPECT_EQ(o.out, "") << "errors go to stderr";
    for (const auto& part : c.expected)
      EXPECT_TRUE(contains(o.err, part)) << "expected: " << part << "\nstderr: " << o.err;
  }
  EXPECT_EQ(provider.stat("requests"), 0) << "a request was sent despite a bad configuration";
  EXPECT_FALSE(fs::exists(db_)) << "a database was created";
}

// ---- read-only commands never write --------------------------------------------------------

TEST_F(Commands, ReadOnlyCommandsOnAMissingSqliteFileCreateNothing) {
  for (const auto& args : {std::vector<std::string>{"status"}, std::vector<std::string>{"failures"},
                           std::vector<std::string>{"verify"}, std::vector<std::string>{"search", "plants"},
                           std::vector<std::string>{"run"}, std::vector<std::string>{"init"},
                           std::vector<std::string>{"failures", "--retry"}}) {
    const auto o = lens(args);
    EXPECT_EQ(o.exit_code, 2) << args[0] << ": " << o.err;
    EXPECT_TRUE(contains(o.err, "init --create")) << o.err;
  }
  EXPECT_TRUE(files().empty()) << fmt::format("{}", fmt::join(files(), ", "));
}

TEST_F(Commands, ReadOnlyCommandsOnADatabaseWithoutOurTablesSayInit) {
  generate(5);  // the source tables only
  const auto before = files();
  for (const auto& args :
       {std::vector<std::string>{"status"}, std::vector<std::string>{"failures"},
        std::vector<std::string>{"verify"}, std::vector<std::string>{"search", "plants"}}) {
    const auto o = lens(args);
    EXPECT_EQ(o.exit_code, 2) << o.err;
    EXPECT_TRUE(contains(o.err, "lens-embed init")) << o.err;
  }
  // No lock file, no other file: SQLite's own -wal/-shm beside a WAL database are the
  // only ones a reader may leave.
  auto after = files();
  after.erase("lens.db-wal");
  after.erase("lens.db-shm");
  EXPECT_EQ(after, before);
  EXPECT_EQ(count("SELECT count(*) FROM sqlite_master WHERE name LIKE '%embedding%'"), 0);
}

TEST_F(Commands, StatusOnAnEmptyPostgresDatabaseCreatesNothing) {
  test::PgScratch db(test::PgServer::shared(), "ro", test::PgScratch::Kind::database);
  ASSERT_TRUE(db.ok()) << db.error();
  auto pg = test::Db::open(db.url());
  const std::vector<std::vector<std::string>> commands = {{"status", "--db", db.url()},
                                                          {"failures", "--db", db.url()},
                                                          {"verify", "--db", db.url()},
                                                          {"search", "--db", db.url(), "plants"}};
  // Empty: not even the source tables.
  for (const auto& args : commands) {
    const auto o = lens(args);
    EXPECT_EQ(o.exit_code, 2) << o.err;
    EXPECT_TRUE(contains(o.err, "`messages` does not exist")) << o.err;
  }
  EXPECT_EQ(pg->scalar("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"), "0");
  // The source tables, not lens-embed's: say init, and still create nothing.
  ASSERT_EQ(pg->exec(lens::test::k_postgres_source_schema), "");
  const auto objects =
      pg->scalar("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace");
  for (const auto& args : commands) {
    const auto o = lens(args);
    EXPECT_EQ(o.exit_code, 2) << o.err;
    EXPECT_TRUE(contains(o.err, "lens-embed init")) << o.err;
  }
  EXPECT_EQ(pg->scalar("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"), objects);
  EXPECT_EQ(pg->scalar("SELECT count(*) FROM pg_class WHERE relname LIKE '%embedding%'"), "0");
}

TEST_F(Commands, AWrongDatabasePasswordIsAConfigurationError) {
  const auto server = test::PgServer::start(dir_ / "pg.env");
  ASSERT_TRUE(server->ok()) << server->error();
  ASSERT_EQ(test::Db::open(server->url())->exec("CREATE ROLE lens_pw LOGIN PASSWORD 'right-pw-123'"), "");
  ASSERT_TRUE(server->require_passwords());
  const std::string url =
      fmt::format("postgresql://lens_pw:wrong-pw-456@127.0.0.1:{}/postgres", server->port());
  for (const auto& args : {std::vector<std::string>{"status", "--db", url},
                           std::vector<std::string>{"run", "--db", url, "--provider", "local-hash"}}) {
    const auto o = lens(args);
    EXPECT_EQ(o.exit_code, 2) << o.err;
    EXPECT_TRUE(contains(o.err, "password authentication failed")) << o.err;
    EXPECT_FALSE(contains(o.out + o.err, "wrong-pw-456"));
  }
  const auto compose = lens({"status"}, {{"POSTGRES_HOST", "127.0.0.1"},
                                         {"POSTGRES_PORT", std::to_string(server->port())},
                                         {"POSTGRES_USER", "lens_pw"},
                                         {"POSTGRES_PASSWORD", "wrong-pw-456"},
                                         {"POSTGRES_DB", "postgres"}});
  EXPECT_EQ(compose.exit_code, 2) << compose.err;
}

// ---- failures --retry: exactly the recorded failures, each under its own pair ----------

TEST_F(Commands, FailuresRetryRetriesExactlyTheFailuresEachUnderItsOwnPair) {
  generate(30);
  // Some inputs are refused for good (the marker: context_length, permanent); under
  // faults every other answer is unusable (invalid_response, transient).
  const std::string marker = "POISON-retry";
  // Among the first exchanges a run reads (keyset order), so that --limit reaches them.
  ASSERT_EQ(
      sql().exec(fmt::format("UPDATE messages SET content = content || ' {}' WHERE role = 'user' AND id IN "
                             "(SELECT id FROM messages WHERE role = 'user' ORDER BY created_at, id LIMIT 4)",
                             marker)),
      "");
  const std::vector<std::string> models = {"text-embedding-3-small", "text-embedding-3-large"};
  {
    auto faulty = stand_in(marker);
    faulty.p_nan = 1;
    test::StandIn provider(faulty);
    ASSERT_TRUE(provider.ok());
    for (const auto& model : models) {
      auto args = provider.provider_args(model);
      args.insert(args.begin(), "run");
      for (const char* a :
           {"--dimensions", "16", "--limit", "12", "--max-attempts", "1", "--batch-size", "1", "--quiet"})
        args.push_back(a);
      const auto o = lens(args);
      EXPECT_EQ(o.exit_code, 1) << "transient failures are left\n" << o.out << o.err;
      EXPECT_TRUE(contains(o.out, "transient failure(s) left")) << o.out;
      EXPECT_TRUE(contains(o.out, "later runs retry them on their own from ")) << o.out;
    }
  }
  EXPECT_EQ(count("SELECT count(*) FROM message_embeddings"), 0);
  // --limit counts what is sent: 12 per pair, refused for good or unusable.
  const long long transient =
      count("SELECT count(*) FROM embedding_failures WHERE reason = 'invalid_response'");
  const long long refused = count("SELECT count(*) FROM embedding_failures WHERE reason = 'context_length'");
  EXPECT_EQ(transient + refused, 24);
  EXPECT_GT(refused, 0);
  EXPECT_GT(transient, 0);
  const long long failed = count("SELECT count(*) FROM embedding_failures");  // also empty_input, if any
  const long long eligible = count("SELECT count(*) FROM messages WHERE role = 'user'");
  ASSERT_GT(eligible, failed + 10) << "pending work must remain for the test to mean something";

  // status and failures show both pairs without being told which.
  const auto status = lens({"status"});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  for (const auto& model : models) {
    EXPECT_TRUE(contains(status.out, "supermind / " + model + ":")) << status.out;
    EXPECT_TRUE(contains(lens({"failures"}).out, "supermind / " + model)) << model;
  }
  EXPECT_TRUE(contains(status.out, "transient")) << status.out;
  const auto one = lens({"status", "--model", models[0]});
  EXPECT_FALSE(contains(one.out, models[1] + ":")) << one.out;

  // The provider is healthy again: retry. Only the transient ones can now succeed.
  test::StandIn provider(stand_in(marker));
  ASSERT_TRUE(provider.ok());
  // No pair has rows yet to take the size from: it is given as the failed runs gave it (a
  // provider answering another size than the model's own without being asked is a
  // configuration error, VectorsOfTheWrongSizeStopTheRunAsAConfigurationError).
  const auto o =
      lens({"failures", "--retry", "--dimensions", "16"}, {{"SUPERMIND_BASE_URL", provider.base_url()}});
  EXPECT_EQ(o.exit_code, 0) << "only permanent failures are left\n" << o.out << o.err;
  for (const auto& model : models)
    EXPECT_TRUE(contains(o.out, "of supermind / " + model)) << o.out;
  // Exactly the failures were sent (the marked ones are refused again), nothing pending.
  EXPECT_EQ(provider.stat("ok_inputs"), transient) << provider.stats_json();
  EXPECT_EQ(count("SELECT count(*) FROM message_embeddings"), transient);
  EXPECT_EQ(count("SELECT count(*) FROM embedding_failures"), failed - transient);
  EXPECT_EQ(count("SELECT count(*) FROM embedding_failures WHERE reason = 'invalid_response'"), 0);
  EXPECT_EQ(count("SELECT min(attempts) FROM embedding_failures"), 2);
  // Each row under the pair it failed under, at the size asked.
  for (const auto& model : models) {
    EXPECT_EQ(
        count(fmt::format("SELECT count(*) FROM message_embeddings WHERE provider = 'supermind' AND model = "
                          "'{}' AND dimensions = 16",
                          model)),
        12 - count(fmt::format(
                 "SELECT count(*) FROM embedding_failures WHERE model = '{}' AND reason = 'context_length'",
                 model)));
  }
  EXPECT_EQ(count("SELECT count(*) FROM embedding_runs"), 4) << "one run per pair, and no other";
  EXPECT_EQ(count("SELECT count(DISTINCT model) FROM embedding_runs WHERE id > 2 AND provider = 'supermind'"),
            2);

  // Named: one pair only. Nothing is left to retry but the permanent ones.
  const auto named = lens({"failures", "--retry", "--provider", "supermind", "--model", models[0]},
                          {{"SUPERMIND_BASE_URL", provider.base_url()}});
  EXPECT_EQ(named.exit_code, 0) << named.err;
  EXPECT_FALSE(contains(named.out, models[1])) << named.out;
}

// ---- one (provider, model), one size; search on what exists --------------------------------

TEST_F(Commands, OneSizePerPairAndSearchOnWhatExists) {
  generate(10);
  ASSERT_EQ(lens({"run", "--quiet"}).exit_code, 0);
  const long long rows = count("SELECT count(*) FROM message_embeddings");
  const auto other = lens({"run", "--dimensions", "64"});
  EXPECT_EQ(other.exit_code, 2) << other.err;
  EXPECT_TRUE(
      contains(other.err, "local-hash / local-hash-v1 holds rows of 384 dimensions; this run would write 64"))
      << other.err;
  EXPECT_TRUE(contains(other.err, "[models.\"local-hash-v1-64\"]")) << other.err;
  EXPECT_TRUE(contains(other.err, "--force")) << other.err;
  EXPECT_EQ(count("SELECT count(*) FROM message_embeddings WHERE dimensions = 384"), rows);

  // The alias the message proposes: a second pair, its own size.
  std::ofstream(dir_ / "lens-embed.toml") << "[models.\"local-hash-v1-64\"]\nmodel = \"local-hash-v1\"\n"
                                             "dimensions = 64\n";
  ASSERT_EQ(lens({"run", "--quiet", "--model", "local-hash-v1-64"}).exit_code, 0);
  EXPECT_EQ(
      count("SELECT count(*) FROM message_embeddings WHERE model = 'local-hash-v1-64' AND dimensions = 64"),
      rows);
  const auto ask = lens({"search", "photosynthesis"});
  EXPECT_EQ(ask.exit_code, 2);
  EXPECT_TRUE(contains(ask.err, "--provider local-hash --model local-hash-v1 ")) << ask.err;
  EXPECT_TRUE(contains(ask.err, "--provider local-hash --model local-hash-v1-64 ")) << ask.err;
  const auto picked = lens({"search", "--model", "local-hash-v1-64", "-k", "3", "photosynthesis"});
  EXPECT_EQ(picked.exit_code, 0) << picked.err;
  EXPECT_TRUE(contains(picked.out, " 3. ")) << picked.out;

  // --force re-embeds every row of the pair at the new size.
  const auto forced = lens({"run", "--quiet", "--dimensions", "32", "--force"});
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_EQ(
      count("SELECT count(*) FROM message_embeddings WHERE model = 'local-hash-v1' AND dimensions = 32"),
      rows);
}

TEST_F(Commands, SearchUsesTheOnlyPairPresentWhateverTheDefaultProvider) {
  generate(10);
  test::StandIn provider(stand_in());
  ASSERT_TRUE(provider.ok());
  auto args = provider.provider_args("text-embedding-3-large");
  args.insert(args.begin(), "run");
  args.insert(args.end(), {"--dimensions", "16", "--quiet"});
  ASSERT_EQ(lens(args).exit_code, 0);
  const auto before = provider.stat("ok_requests");
  // The configured default is local-hash, but the database holds only this pair: it decides.
  const auto o = lens({"search", "-k", "2", "osmosis"},
                      {{"SUPERMIND_BASE_URL", provider.base_url()}, {"LENS_PROVIDER", "local-hash"}});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_TRUE(contains(o.out, " 2. ")) << o.out;
  EXPECT_EQ(provider.stat("ok_requests"), before + 1) << "the query was embedded by the pair's provider";
}

// ---- --follow is one quiet run --------------------------------------------------------------

TEST_F(Commands, FollowIsOneRunAndIdlePassesPrintNothing) {
  generate(10);
  test::SpawnOptions so;
  so.cwd = dir_.path();
  so.out_path = dir_ / "follow.out";
  so.err_path = dir_ / "follow.err";
  so.env = {{"SUPERMIND_API_KEY", k_key}};
  // --verbose: the passes say so in debug lines, which lets this test wait for them.
  const pid_t pid = test::spawn_lens({"run", "--follow", "--verbose"}, so);
  ASSERT_GT(pid, 0);
  auto err = [&] { return test::slurp(dir_ / "follow.err"); };
  ASSERT_TRUE(test::wait_until([&] { return contains(err(), "follow: pass 3 read to the end"); }, 120s))
      << err();
  ASSERT_EQ(
      sql().exec("INSERT INTO messages (id, conversation_id, role, content, created_at) SELECT 'late-1', "
                 "conversation_id, 'user', 'a late question about enzymes', '2031-01-01T00:00:00Z' FROM "
                 "messages LIMIT 1"),
      "");
  ASSERT_TRUE(test::wait_until(
      [&] { return count("SELECT count(*) FROM message_embeddings WHERE user_message_id = 'late-1'") == 1; },
      60s))
      << err();
  ASSERT_TRUE(test::wait_until([&] { return contains(err(), "follow: pass 6 read to the end"); }, 60s))
      << err();
  EXPECT_EQ(test::kill_and_wait(pid, SIGTERM), 0) << err();
  EXPECT_EQ(count("SELECT count(*) FROM embedding_runs"), 1);
  EXPECT_EQ(count("SELECT embedded FROM embedding_runs"), count("SELECT count(*) FROM message_embeddings"));
  // A progress line only when something was done since the last one: never two alike.
  const std::string log = err();
  std::set<std::string> handled;
  for (auto at = log.find("event=progress handled="); at != std::string::npos;
       at = log.find("event=progress handled=", at + 1)) {
    const auto value = log.substr(at, log.find(' ', at + 16) - at);
    EXPECT_TRUE(handled.insert(value).second) << "an idle pass printed progress again:\n" << log;
  }
  const auto summary = test::slurp(dir_ / "follow.out");
  EXPECT_TRUE(summary.starts_with("run 1 completed")) << summary;
}

// ---- local-hash never returns a zero vector ---------------------------------------------------

TEST_F(Commands, LocalHashGivesFeaturelessInputsAUnitVectorAndSaysSoForAQuery) {
  ASSERT_EQ(sql().exec(lens::test::k_sqlite_source_schema), "");
  ASSERT_EQ(sql().exec("INSERT INTO conversations (id, user_id) VALUES ('c', 'u'); INSERT INTO messages (id, "
                       "conversation_id, role, content, created_at) VALUES ('q', 'c', 'user', '?', "
                       "'2024-01-01T00:00:00Z'), ('w', 'c', 'user', 'words here', '2024-01-01T00:00:01Z')"),
            "");
  ASSERT_EQ(lens({"run", "--quiet"}).exit_code, 0);
  const auto blob = sql().scalar("SELECT embedding FROM message_embeddings WHERE user_message_id = 'q'");
  ASSERT_TRUE(blob && blob->size() == 384 * sizeof(float));
  double norm = 0;
  for (std::size_t i = 0; i < 384; ++i) {
    float v = 0;
    std::memcpy(&v, blob->data() + i * sizeof(float), sizeof v);
    norm += static_cast<double>(v) * v;
  }
  EXPECT_NEAR(norm, 1.0, 1e-5);
  const auto o = lens({"search", "?"});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_TRUE(contains(o.err, "has no letters or digits")) << o.err;
}

// ---- run --no-wait ------------------------------------------------------------------------------

TEST_F(Commands, NoWaitExitsAtOnceNamingTheRunThatHoldsTheFile) {
  generate(5);
  test::SpawnOptions so;
  so.cwd = dir_.path();
  so.err_path = dir_ / "holder.err";
  const pid_t holder = test::spawn_lens({"run", "--follow", "--quiet"}, so);
  ASSERT_GT(holder, 0);
  // Its run is recorded: it holds the lock, and its signal handlers are in place.
  ASSERT_TRUE(test::wait_until(
      [&] { return sql().scalar("SELECT count(*) FROM embedding_runs").value_or("") == "1"; }, 60s));
  ASSERT_TRUE(contains(test::slurp(dir_ / "lens.db.lens-embed.lock"), std::to_string(holder)));
  const auto o = lens({"run", "--no-wait"});
  EXPECT_EQ(o.exit_code, 1) << o.err;
  EXPECT_TRUE(contains(o.err, std::to_string(holder))) << o.err;
  EXPECT_EQ(test::kill_and_wait(holder, SIGTERM), 0) << test::slurp(dir_ / "holder.err");
}

}  // namespace
