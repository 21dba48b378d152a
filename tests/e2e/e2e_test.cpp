// End-to-end tests of the real lens-embed binary on real SQLite files with local-hash.
#include <gtest/gtest.h>

#include <signal.h>

#include <fmt/core.h>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "core/input_text.h"
#include "provider/local_hash.h"
#include "support/paths.h"
#include "support/process.h"
#include "support/source_schema.h"
#include "support/sql.h"
#include "tokenizer/tokenizer.h"
#include "util/sha256.h"

namespace {

using nlohmann::json;
using Result = lens::test::Output;

class E2E : public ::testing::Test {
 protected:
  void SetUp() override {
    db_path_ = dir_ / "lens.db";
    auto tok = lens::tokenizer::Tokenizer::load(lens::tokenizer::Encoding::cl100k_base);
    ASSERT_TRUE(tok) << tok.error().message;
    tokenizer_ = *tok;
  }
  void TearDown() override {
    db_.reset();
    if (HasFailure()) dir_.keep();
  }

  Result run(const std::vector<std::string>& args, const lens::test::Env& env = {}) {
    return lens::test::run_lens(args, dir_.path(), env);
  }
  // Starts the binary in the test's folder, stdout and stderr to o.txt and e.txt there.
  pid_t spawn(const std::vector<std::string>& args) {
    lens::test::SpawnOptions o;
    o.cwd = dir_.path();
    o.out_path = dir_ / "o.txt";
    o.err_path = dir_ / "e.txt";
    return lens::test::spawn_lens(args, o);
  }
  json run_json(std::vector<std::string> args) {
    args.push_back("--json");
    auto r = run(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.out;
    return j;
  }

  void generate(int conversations, int seed = 1) {
    const auto r =
        lens::test::run({lens::test::sample_corpus_binary(), "--sqlite", db_path_, "--conversations",
                         std::to_string(conversations), "--seed", std::to_string(seed)},
                        dir_.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  lens::test::Db& db() {
    if (!db_) db_ = lens::test::Db::open("sqlite:" + db_path_);
    return *db_;
  }
  void exec(const std::string& sql) { ASSERT_EQ(db().exec(sql), "") << sql; }
  // The Lens tables, as the test's database must have them before `init` (lens-embed never
  // creates them).
  void source_schema() { ASSERT_EQ(lens::test::create_source_schema(db()), ""); }
  long long scalar(const std::string& sql) {
    const auto v = db().scalar(sql);
    EXPECT_TRUE(v) << db().last_error() << "\n" << sql;
    return v ? std::stoll(*v) : -1;
  }
  std::string text(const std::string& sql) {
    const auto v = db().scalar(sql);
    EXPECT_TRUE(v || db().last_error().empty()) << db().last_error() << "\n" << sql;
    return v.value_or("");
  }
  // Every row of `sql`; fails the test on an error.
  std::vector<lens::test::Db::Row> rows(const std::string& sql) {
    auto r = db().query(sql);
    EXPECT_TRUE(r) << db().last_error() << "\n" << sql;
    return r.value_or(std::vector<lens::test::Db::Row>{});
  }

  // Independent check of the whole output: every eligible exchange has exactly one row,
  // its answer id is right (computed here in C++, not by the store's SQL), its sha256 and
  // token count match the input rebuilt from the messages, and its vector is local-hash
  // of that input. Returns the number of rows checked.
  long long verify_all() {
    struct Msg {
      std::string id, conv, role, created;
      std::optional<std::string> content;
    };
    std::vector<Msg> msgs;
    for (auto& r : rows("SELECT id, conversation_id, role, content, created_at FROM messages "
                        "ORDER BY conversation_id, created_at, id")) {
      msgs.push_back(Msg{*r[0], *r[1], *r[2], *r[4], r[3]});
    }
    std::map<std::string, lens::core::Exchange> expected;
    for (std::size_t i = 0; i < msgs.size(); ++i) {
      const Msg& m = msgs[i];
      if (m.role != "user" || !m.content) continue;
      if (m.content->find_first_not_of(" \t\n\r\v\f") == std::string::npos) continue;
      lens::core::Exchange ex;
      ex.user_message_id = m.id;
      ex.user_content = *m.content;
      for (std::size_t j = i + 1; j < msgs.size() && msgs[j].conv == m.conv; ++j) {
        if (msgs[j].role == "user") break;
        if (msgs[j].role == "assistant") {
          ex.assistant_message_id = msgs[j].id;
          ex.assistant_content = msgs[j].content.value_or("");
          break;
        }
      }
      expected[m.id] = std::move(ex);
    }
    EXPECT_EQ(scalar("SELECT count(*) FROM message_embeddings"), static_cast<long long>(expected.size()));
    EXPECT_EQ(scalar("SELECT count(*) FROM (SELECT user_message_id FROM message_embeddings "
                     "GROUP BY provider, model, user_message_id HAVING count(*) > 1)"),
              0);
    long long checked = 0, bad = 0;
    std::vector<float> vec(384);
    for (const auto& r : rows("SELECT user_message_id, assistant_message_id, content_sha256, token_count, "
                              "truncated, dimensions, embedding FROM message_embeddings")) {
      const std::string id = *r[0];
      auto it = expected.find(id);
      if (it == expected.end()) {
        ADD_FAILURE() << "row for a message that is not an eligible user message: " << id;
        continue;
      }
      const auto& ex = it->second;
      const std::optional<std::string>& answer = r[1];
      const std::string input = lens::core::build_input_text(ex);
      const auto sha = lens::util::sha256(input);
      lens::provider::local_hash_embed(input, vec);
      const std::string& stored_sha = *r[2];
      const std::string& stored_vector = *r[6];
      const bool ok = answer == ex.assistant_message_id && stored_sha.size() == 32 &&
                      std::memcmp(stored_sha.data(), sha.data(), 32) == 0 &&
                      std::stoll(*r[3]) == static_cast<long long>(tokenizer_->count(input)) && *r[4] == "0" &&
                      *r[5] == "384" && stored_vector.size() == 384 * 4 &&
                      std::memcmp(stored_vector.data(), vec.data(), 384 * 4) == 0;
      if (!ok && ++bad < 5) ADD_FAILURE() << "row " << id << " does not match its exchange";
      ++checked;
    }
    EXPECT_EQ(bad, 0);
    return checked;
  }

  lens::test::TempDir dir_{"e2e"};
  std::string db_path_;
  std::unique_ptr<lens::test::Db> db_;
  std::shared_ptr<const lens::tokenizer::Tokenizer> tokenizer_;
};

TEST_F(E2E, RerunIsANoOpAndForceUpdatesInPlace) {
  generate(300);
  auto first = run_json({"run"});
  EXPECT_GT(first["stats"]["embedded"].get<long long>(), 300);
  const long long rows = scalar("SELECT count(*) FROM message_embeddings");
  EXPECT_EQ(verify_all(), rows);

  auto second = run_json({"run"});
  EXPECT_EQ(second["stats"]["requests"], 0);
  EXPECT_EQ(second["stats"]["embedded"], 0);

  exec("UPDATE message_embeddings SET updated_at = '2000-01-01T00:00:00.000Z'");
  auto forced = run_json({"run", "--force"});
  EXPECT_EQ(forced["stats"]["embedded"].get<long long>(), rows);
  EXPECT_EQ(scalar("SELECT count(*) FROM message_embeddings"), rows);
  EXPECT_EQ(scalar("SELECT count(*) FROM message_embeddings WHERE updated_at > '2001'"), rows);
  EXPECT_EQ(verify_all(), rows);
}

TEST_F(E2E, EditingOneMessageReembedsOnlyThatExchange) {
  generate(200);
  run_json({"run"});
  const std::string id = text(
      "SELECT id FROM messages WHERE role = 'user' AND content IS NOT NULL "
      "AND content <> '' ORDER BY id LIMIT 1");
  exec(
      fmt::format("UPDATE messages SET content = 'an edited question about enzymes', "
                  "updated_at = '2030-01-01T00:00:00Z' WHERE id = '{}'",
                  id));
  auto again = run_json({"run"});
  EXPECT_EQ(again["stats"]["embedded"], 1);
  EXPECT_EQ(again["stats"]["requests"], 1);
  verify_all();
}

TEST_F(E2E, NewAnswerMakesTheExchangeStale) {
  generate(50);
  run_json({"run"});
  // A user message without an answer gets one later: its input changes.
  const std::string id = text(
      "SELECT e.user_message_id FROM message_embeddings e JOIN messages m ON m.id = e.user_message_id "
      "WHERE e.assistant_message_id IS NULL LIMIT 1");
  if (id.empty()) GTEST_FAIL() << "the sample corpus should contain unanswered questions";
  const std::string conv = text(fmt::format("SELECT conversation_id FROM messages WHERE id = '{}'", id));
  const std::string created = text(fmt::format("SELECT created_at FROM messages WHERE id = '{}'", id));
  exec(
      fmt::format("INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES "
                  "('late-answer', '{}', 'assistant', 'a late answer', '{}' || 'z')",
                  conv, created));
  auto again = run_json({"run"});
  EXPECT_EQ(again["stats"]["embedded"], 1);
  EXPECT_EQ(text(fmt::format(
                "SELECT assistant_message_id FROM message_embeddings WHERE user_message_id = '{}'", id)),
            "late-answer");
  verify_all();
}

TEST_F(E2E, LimitEmbedsExactlyN) {
  generate(300);
  auto r = run_json({"run", "--limit", "123", "--batch-size", "8"});
  EXPECT_EQ(r["stats"]["embedded"], 123);
  EXPECT_EQ(scalar("SELECT count(*) FROM message_embeddings"), 123);
  run_json({"run"});
  verify_all();
}

TEST_F(E2E, SigkillAtRandomMomentsThenRerunLeavesExactlyOneCorrectRowEach) {
  generate(20000);
  ASSERT_EQ(run({"init"}).exit_code, 0);  // so that a kill during start-up leaves tables to count
  const long long eligible = scalar(
      "SELECT count(*) FROM messages WHERE role = 'user' AND trim(content, ' ' || char(9,10,11,12,13)) <> "
      "''");
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE(fmt::format("kill moments from seed {}", seed));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  int killed_mid_run = 0;
  for (int i = 0; i < 6; ++i) {
    const pid_t pid = spawn({"run", "--batch-size", "64"});
    // The first run dies during start-up; the others at random points of the work,
    // spread over its first 80%: moments of progress, not of time, so that a kill lands
    // mid-run on a fast machine as on a slow one.
    std::optional<int> ended;
    if (i == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<>(0, 30)(rng)));
    } else {
      const auto at = static_cast<long long>(static_cast<double>(eligible) * 0.8 * (i - 1 + u(rng)) / 5);
      lens::test::wait_until(
          [&] {
            ended = lens::test::try_wait(pid);
            return ended || scalar("SELECT count(*) FROM message_embeddings") >= at;
          },
          std::chrono::minutes(2));
    }
    const int code = ended ? *ended : lens::test::kill_and_wait(pid, SIGKILL);
    if (code == 128 + SIGKILL) ++killed_mid_run;
  }
  EXPECT_GE(killed_mid_run, 1);
  const long long partial = scalar("SELECT count(*) FROM message_embeddings");
  auto final_run = run_json({"run"});
  EXPECT_EQ(final_run["status"], "completed");
  const long long rows = scalar("SELECT count(*) FROM message_embeddings");
  EXPECT_EQ(final_run["stats"]["embedded"].get<long long>(), rows - partial);
  EXPECT_EQ(verify_all(), rows);
  EXPECT_EQ(rows, scalar("SELECT count(*) FROM messages WHERE role = 'user' AND "
                         "trim(content, ' ' || char(9,10,11,12,13)) <> ''"));
}

TEST_F(E2E, SigtermStopsCleanlyAndIsRecordedAsInterrupted) {
  generate(20000);
  ASSERT_EQ(run({"init"}).exit_code, 0);
  const pid_t pid = spawn({"run", "--batch-size", "16"});
  // Wait until the run has begun committing (however long start-up takes on this
  // machine: a signal before the handler is installed would end it as 128 + 15), then
  // ask it to stop.
  const bool committing = lens::test::wait_until(
      [&] { return scalar("SELECT count(*) FROM embedding_runs WHERE embedded > 0") > 0; },
      std::chrono::minutes(2));
  const int code = lens::test::kill_and_wait(pid, SIGTERM);
  ASSERT_TRUE(committing) << "the run committed nothing in 2 minutes:\n" << lens::test::slurp(dir_ / "e.txt");
  ASSERT_NE(code, 0) << "the run finished before SIGTERM arrived; make the corpus larger";
  EXPECT_EQ(code, 1) << lens::test::slurp(dir_ / "e.txt");
  EXPECT_EQ(text("SELECT status FROM embedding_runs ORDER BY id DESC LIMIT 1"), "interrupted");
  EXPECT_EQ(scalar("SELECT embedded FROM embedding_runs ORDER BY id DESC LIMIT 1"),
            scalar("SELECT count(*) FROM message_embeddings"));
  run_json({"run"});
  verify_all();
}

TEST_F(E2E, AssistantMessageIdFollowsTheContract) {
  source_schema();
  ASSERT_EQ(run({"init"}).exit_code, 0);
  exec("INSERT INTO conversations (id, user_id) VALUES ('c1','u'),('c2','u'),('c3','u'),('c4','u')");
  exec(R"sql(INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES
    -- a user message followed by two assistant messages: the first answers
    ('c1-u', 'c1', 'user', 'first question', '2024-01-01T00:00:00Z'),
    ('c1-a1', 'c1', 'assistant', 'first answer', '2024-01-01T00:00:01Z'),
    ('c1-a2', 'c1', 'assistant', 'second answer', '2024-01-01T00:00:02Z'),
    -- by none
    ('c2-u', 'c2', 'user', 'nobody answers', '2024-01-01T00:00:00Z'),
    -- two user messages in a row: the first has no answer, the second has
    ('c3-u1', 'c3', 'user', 'hello?', '2024-01-01T00:00:00Z'),
    ('c3-u2', 'c3', 'user', 'anyone there?', '2024-01-01T00:00:01Z'),
    ('c3-t', 'c3', 'tool', 'tool output', '2024-01-01T00:00:02Z'),
    ('c3-a', 'c3', 'assistant', 'yes', '2024-01-01T00:00:03Z'),
    -- a system message first; equal timestamps are ordered by id (c4-z after c4-u)
    ('c4-s', 'c4', 'system', 'be nice', '2024-01-01T00:00:00Z'),
    ('c4-u', 'c4', 'user', 'question four', '2024-01-01T00:00:01Z'),
    ('c4-z', 'c4', 'assistant', 'answer four', '2024-01-01T00:00:01Z'),
    -- same time, but the assistant id sorts first: it comes before, so no answer
    ('c5-u', 'c4', 'user', 'question five', '2024-01-01T00:00:05Z'),
    ('c5-a', 'c4', 'assistant', 'too early', '2024-01-01T00:00:05Z'))sql");
  run_json({"run"});
  auto answer = [&](const std::string& id) {
    return text(
        fmt::format("SELECT coalesce(assistant_message_id, 'NULL') FROM message_embeddings "
                    "WHERE user_message_id = '{}'",
                    id));
  };
  EXPECT_EQ(answer("c1-u"), "c1-a1");
  EXPECT_EQ(answer("c2-u"), "NULL");
  EXPECT_EQ(answer("c3-u1"), "NULL");
  EXPECT_EQ(answer("c3-u2"), "c3-a");
  EXPECT_EQ(answer("c4-u"), "c4-z");
  EXPECT_EQ(answer("c5-u"), "NULL");
  EXPECT_EQ(scalar("SELECT count(*) FROM message_embeddings"), 6);
  EXPECT_EQ(verify_all(), 6);
}

TEST_F(E2E, BlankAndInvalidContentNeverSentNorCrashes) {
  source_schema();
  ASSERT_EQ(run({"init"}).exit_code, 0);
  exec("INSERT INTO conversations (id, user_id) VALUES ('c','u')");
  exec(
      "INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES "
      "('null', 'c', 'user', NULL, '2024-01-01T00:00:01Z'), ('empty', 'c', 'user', '', "
      "'2024-01-01T00:00:02Z'), "
      "('ws', 'c', 'user', ' ' || char(9,10,13), '2024-01-01T00:00:03Z'), "
      "('bad-utf8', 'c', 'user', CAST(X'C328FFEDA0806F6B' AS TEXT), '2024-01-01T00:00:04Z'), "
      "('fine', 'c', 'user', 'a question', '2024-01-01T00:00:05Z')");
  auto r = run_json({"run"});
  EXPECT_EQ(r["stats"]["embedded"], 2);
  EXPECT_EQ(scalar("SELECT count(*) FROM message_embeddings WHERE user_message_id IN ('null','empty','ws')"),
            0);
  EXPECT_EQ(scalar("SELECT count(*) FROM message_embeddings WHERE user_message_id = 'bad-utf8'"), 1);
  EXPECT_EQ(run_json({"status"})["eligible"], 2);
}

TEST_F(E2E, DotenvNeverOverridesTheEnvironment) {
  std::ofstream(dir_ / ".env") << "LENS_DATABASE_URL=sqlite:from-dotenv.db\n";
  auto r = run({"config", "--json"}, {{"LENS_DATABASE_URL", "sqlite:from-env.db"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = json::parse(r.out);
  EXPECT_EQ(j["database"]["value"], "sqlite:from-env.db");
  EXPECT_EQ(j["database"]["source"], "env LENS_DATABASE_URL");
  r = run({"config", "--json"});
  EXPECT_EQ(json::parse(r.out)["database"]["value"], "sqlite:from-dotenv.db");
}

TEST_F(E2E, BadFlagExitsTwoAndNamesTheFlag) {
  auto r = run({"run", "--bogus-flag"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--bogus-flag"), std::string::npos) << r.err;
  r = run({"run", "--batch-size", "0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--batch-size"), std::string::npos) << r.err;
  r = run({"run", "--db", "nonsense"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--db"), std::string::npos) << r.err;
  std::ofstream(dir_ / "lens-embed.toml") << "[defaults]\nbatch_size = [\n";
  r = run({"status"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("lens-embed.toml:"), std::string::npos) << r.err;
}

TEST_F(E2E, DryRunCountsTokensAndCallsNothing) {
  generate(100);
  auto r = run_json({"run", "--dry-run"});
  EXPECT_EQ(r["status"], "dry_run");
  EXPECT_GT(r["dry_run"]["exchanges"].get<long long>(), 100);
  EXPECT_GT(r["dry_run"]["tokens"].get<long long>(), r["dry_run"]["exchanges"].get<long long>());
  EXPECT_EQ(scalar("SELECT count(*) FROM message_embeddings"), 0);
}

TEST_F(E2E, SearchFindsTheClosestExchange) {
  source_schema();
  ASSERT_EQ(run({"init"}).exit_code, 0);
  exec("INSERT INTO conversations (id, user_id) VALUES ('c','u')");
  exec(
      "INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES "
      "('m1', 'c', 'user', 'How does photosynthesis work in green plants?', '2024-01-01T00:00:01Z'), "
      "('m2', 'c', 'user', 'Solve this quadratic equation for me', '2024-01-01T00:00:02Z'), "
      "('m3', 'c', 'user', 'Who started the French Revolution?', '2024-01-01T00:00:03Z')");
  run_json({"run"});
  auto r = run_json({"search", "-k", "2", "photosynthesis in plants"});
  ASSERT_EQ(r["hits"].size(), 2u);
  EXPECT_EQ(r["hits"][0]["user_message_id"], "m1");
  EXPECT_EQ(r["hits"][0]["conversation_id"], "c");
  EXPECT_GT(r["hits"][0]["score"].get<double>(), r["hits"][1]["score"].get<double>());
}

}  // namespace

namespace {

TEST_F(E2E, ProgressOnATerminalIsOneLiveLine) {
  generate(2000);
  // util-linux `script` gives the program a pseudo-terminal.
  const auto r = lens::test::run(
      {"script", "-qec", "'" + lens::test::lens_embed_binary() + "' run", "/dev/null"}, dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string tty = r.out + r.err;
  EXPECT_NE(tty.find("\r\033[2K"), std::string::npos) << tty;  // redrawn in place
  EXPECT_NE(tty.find("rows/s"), std::string::npos) << tty;
  EXPECT_NE(tty.find("TPM"), std::string::npos) << tty;
  EXPECT_NE(tty.find("ETA"), std::string::npos) << tty;
  EXPECT_NE(tty.find("failed 0"), std::string::npos) << tty;
  EXPECT_EQ(tty.find("event=progress"), std::string::npos) << "logfmt lines are for pipes only";
}

TEST_F(E2E, ProgressWithoutATerminalIsLogfmtOrJsonAndQuietSilencesIt) {
  generate(100);
  auto r = run({"run"});
  EXPECT_NE(r.err.find("event=done"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("completed"), std::string::npos) << r.out;  // the summary is always printed
  r = run({"run", "--force", "--log-format", "json"});
  const auto line = r.err.substr(0, r.err.find('\n'));
  auto j = json::parse(line, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.err;
  EXPECT_EQ(j["event"], "done");
  r = run({"run", "--force", "--quiet"});
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("completed"), std::string::npos);
}

TEST_F(E2E, FailuresAndStatusAsJson) {
  source_schema();
  ASSERT_EQ(run({"init"}).exit_code, 0);
  exec("INSERT INTO conversations (id, user_id) VALUES ('c','u')");
  exec(
      "INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES "
      "('nbsp', 'c', 'user', char(160), '2024-01-01T00:00:01Z'), ('ok', 'c', 'user', 'fine', "
      "'2024-01-01T00:00:02Z')");
  run_json({"run"});
  auto f = run_json({"failures"});
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0]["user_message_id"], "nbsp");
  EXPECT_EQ(f[0]["reason"], "empty_input");
  EXPECT_EQ(f[0]["attempts"], 1);
  auto st = run_json({"status"});
  ASSERT_EQ(st["models"].size(), 1u);
  EXPECT_EQ(st["models"][0]["embedded"], 1);
  EXPECT_EQ(st["models"][0]["failed"], 1);
  EXPECT_EQ(st["models"][0]["failures_by_reason"]["empty_input"], 1);
  EXPECT_EQ(st["recent_runs"][0]["status"], "completed");
  // Retrying keeps the failure (still blank) and counts the attempt.
  run({"failures", "--retry"});
  EXPECT_EQ(run_json({"failures"})[0]["attempts"], 2);
}

TEST_F(E2E, ManPageAndCompletionComeFromTheFlagDefinitions) {
  auto man = run({"man"});
  ASSERT_EQ(man.exit_code, 0);
  EXPECT_NE(man.out.find(".TH LENS-EMBED 1"), std::string::npos);
  EXPECT_NE(man.out.find("\\-\\-batch\\-size"), std::string::npos);
  auto comp = run({"completion"});
  ASSERT_EQ(comp.exit_code, 0);
  EXPECT_NE(comp.out.find("complete -o default -F _lens_embed lens-embed"), std::string::npos);
  EXPECT_NE(comp.out.find("--dry-run"), std::string::npos);
  auto help = run({"run", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("Examples:"), std::string::npos);
}

}  // namespace
