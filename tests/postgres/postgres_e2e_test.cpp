// End-to-end tests of the real lens-embed binary on real PostgreSQL: the old pipeline's
// 7000/6000 check, a server restart mid-run, 4 workers with one SIGKILLed, --follow.
#include <gtest/gtest.h>
#include <signal.h>

#include <fmt/core.h>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "support/pg.h"
#include "support/process.h"
#include "support/source_schema.h"
#include "support/sql.h"
#include "support/stand_in.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

class PgE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(lens::test::PgServer::shared().ok()) << lens::test::PgServer::shared().error();
    use_server(lens::test::PgServer::shared());
  }
  void TearDown() override {
    db_.reset();
    schema_.reset();
    if (HasFailure()) dir_.keep();
  }

  // A schema of this test's own on `server`; the test's SQL and lens-embed work there.
  void use_server(const lens::test::PgServer& server) {
    db_.reset();
    schema_ = std::make_unique<lens::test::PgScratch>(server, "e2e");
    ASSERT_TRUE(schema_->ok()) << schema_->error();
    db_url_ = schema_->url();
    db_ = lens::test::Db::open(db_url_);
    // The Lens tables: lens-embed never creates them.
    ASSERT_EQ(lens::test::create_source_schema(*db_), "");
  }

  void exec(const std::string& sql) {
    const std::string e = db_->exec(sql);
    EXPECT_EQ(e, "") << sql;
  }
  long long scalar(const std::string& sql) {
    const auto v = db_->scalar(sql);
    if (!v || v->empty()) {
      ADD_FAILURE() << db_->last_error() << sql;
      return -1;
    }
    return std::stoll(*v);
  }

  // `n` exchanges (user + answer), 4 per conversation, after `lens-embed init`.
  void corpus(int n, int first = 1) {
    exec(
        fmt::format("INSERT INTO conversations (id, user_id, created_at) SELECT "
                    "('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, gen_random_uuid(), now() "
                    "FROM generate_series({0} / 4, ({0} + {1}) / 4) g ON CONFLICT DO NOTHING",
                    first, n));
    exec(fmt::format(
        "INSERT INTO messages (id, conversation_id, role, content, created_at) "
        "SELECT ('00000000-0000-4000-a000-' || lpad(g::text, 12, '0'))::uuid, "
        "('00000000-0000-4000-8000-' || lpad((g / 4)::text, 12, '0'))::uuid, 'user', "
        "'How does topic ' || (g % 97) || ' relate to question ' || g || '?', "
        "'2024-01-01'::timestamptz + g * interval '1 second' FROM generate_series({0}, {0} + {1} - 1) g; "
        "INSERT INTO messages (id, conversation_id, role, content, created_at) "
        "SELECT ('00000000-0000-4000-b000-' || lpad(g::text, 12, '0'))::uuid, "
        "('00000000-0000-4000-8000-' || lpad((g / 4)::text, 12, '0'))::uuid, 'assistant', "
        "'Topic ' || (g % 97) || ' is explained in answer ' || g || '.', "
        "'2024-01-01'::timestamptz + g * interval '1 second' + interval '10 ms' "
        "FROM generate_series({0}, {0} + {1} - 1) g",
        first, n));
  }

  // Starts lens-embed with `args` in the test's folder (stdout to `log_name`, stderr
  // next to it); the environment is ours minus any database/provider settings, plus `env`.
  pid_t spawn(const std::vector<std::string>& args, const lens::test::Env& env, const std::string& log_name) {
    lens::test::SpawnOptions o;
    o.cwd = dir_.path();
    o.out_path = dir_ / log_name;
    o.err_path = dir_ / (log_name + ".err");
    o.env = env;
    return lens::test::spawn_lens(args, o);
  }
  int run(const std::vector<std::string>& args, const lens::test::Env& env = {},
          const std::string& log_name = "run.log") {
    return lens::test::wait_exit(spawn(args, env, log_name));
  }
  std::string log(const std::string& name) {
    return lens::test::slurp(dir_ / name) + lens::test::slurp(dir_ / (name + ".err"));
  }

  std::unique_ptr<lens::test::StandIn> stand_in(double latency_ms = 0) {
    lens::stand_in::StandInOptions o;
    o.default_dimensions = 3072;
    o.latency_ms = latency_ms;
    o.api_key = "sk-test-e2e-key";
    auto s = std::make_unique<lens::test::StandIn>(o);
    EXPECT_TRUE(s->ok());
    return s;
  }
  static std::vector<std::string> supermind(const lens::test::StandIn& s) {
    return s.provider_args("text-embedding-3-large");
  }
  static lens::test::Env key_env() { return {{"SUPERMIND_API_KEY", "sk-test-e2e-key"}}; }
  static long long stat(const lens::test::StandIn& s, const std::string& name) { return s.stat(name); }

  long long rows(const std::string& provider = "supermind",
                 const std::string& model = "text-embedding-3-large") {
    return scalar(fmt::format(
        "SELECT count(*) FROM message_embeddings WHERE provider = '{}' AND model = '{}'", provider, model));
  }

  lens::test::TempDir dir_{"pg_e2e"};
  std::unique_ptr<lens::test::PgServer> own_server_;  // a test's own (restarted) server
  std::unique_ptr<lens::test::PgScratch> schema_;
  std::unique_ptr<lens::test::Db> db_;
  std::string db_url_;
};

TEST_F(PgE2E, OldPipelineCheckLimit6000Of7000ThenTheRest) {
  ASSERT_EQ(run({"init", "--db", db_url_}), 0) << log("run.log");
  corpus(7000);
  auto provider = stand_in();
  std::vector<std::string> args = {"run", "--db", db_url_, "--batch-size", "8", "--limit", "6000", "--force"};
  for (const auto& a : supermind(*provider))
    args.push_back(a);
  ASSERT_EQ(run(args, key_env(), "first.log"), 0) << log("first.log");
  EXPECT_EQ(rows(), 6000);
  EXPECT_EQ(stat(*provider, "ok_inputs"), 6000);
  EXPECT_EQ(scalar("SELECT count(*) FROM message_embeddings WHERE dimensions <> 3072 OR "
                   "array_length(embedding, 1) <> 3072"),
            0);
  std::vector<std::string> rest = {"run", "--db", db_url_, "--batch-size", "8"};
  for (const auto& a : supermind(*provider))
    rest.push_back(a);
  ASSERT_EQ(run(rest, key_env(), "second.log"), 0) << log("second.log");
  EXPECT_EQ(rows(), 7000);
  EXPECT_EQ(stat(*provider, "ok_inputs"), 7000) << "the second run must embed only the 1000 left";
  EXPECT_EQ(scalar("SELECT count(*) FROM embedding_failures"), 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM embedding_claims WHERE expires_at > now()"), 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM embedding_runs WHERE status = 'completed'"), 2);
  EXPECT_EQ(log("first.log").find("sk-test-e2e-key"), std::string::npos);
}

TEST_F(PgE2E, ServerRestartMidRunLosesAndDuplicatesNothing) {
  // Its own server: a restart would disturb the other tests' shared one.
  own_server_ = lens::test::PgServer::start(dir_ / "pg.env", /*durable=*/true);
  ASSERT_TRUE(own_server_->ok()) << own_server_->error();
  use_server(*own_server_);
  ASSERT_EQ(run({"init", "--db", db_url_}), 0) << log("run.log");
  corpus(6000);
  auto provider = stand_in(40);
  std::vector<std::string> args = {"run",           "--db", db_url_,        "--batch-size", "16",
                                   "--concurrency", "4",    "--dimensions", "256"};
  for (const auto& a : supermind(*provider))
    args.push_back(a);
  const pid_t pid = spawn(args, key_env(), "restart.log");
  // Wait until some rows are committed, then crash-restart the server (down 2 s).
  if (!lens::test::wait_until([&] { return stat(*provider, "ok_inputs") >= 800; }, 120s)) {
    lens::test::kill_and_wait(pid, SIGKILL);
    FAIL() << "800 inputs were not embedded in 2 minutes:\n" << log("restart.log");
  }
  ASSERT_TRUE(own_server_->restart(2));
  const int code = lens::test::wait_exit(pid);
  ASSERT_EQ(code, 0) << log("restart.log");
  const std::string out = log("restart.log");
  EXPECT_TRUE(out.find("reconnected") != std::string::npos || out.find("retrying") != std::string::npos)
      << "the restart did not hit the run:\n"
      << out;
  EXPECT_EQ(rows(), 6000) << out;
  EXPECT_EQ(scalar("SELECT count(DISTINCT user_message_id) FROM message_embeddings"), 6000);
  EXPECT_EQ(scalar("SELECT count(*) FROM embedding_failures"), 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM embedding_claims WHERE expires_at > now()"), 0);
  // Every row is the exchange it claims to be: its answer is the right one.
  EXPECT_EQ(scalar("SELECT count(*) FROM message_embeddings e WHERE assistant_message_id IS DISTINCT FROM "
                   "('00000000-0000-4000-b000-' || substr(user_message_id::text, 25))::uuid"),
            0);
}

TEST_F(PgE2E, FourWorkersOneKilledSplitTheWorkWithoutLossOrDuplicates) {
  ASSERT_EQ(run({"init", "--db", db_url_}), 0) << log("run.log");
  corpus(20000);
  auto provider = stand_in(15);
  std::vector<std::string> args = {"run",           "--db", db_url_,        "--batch-size", "32",
                                   "--concurrency", "4",    "--dimensions", "256"};
  for (const auto& a : supermind(*provider))
    args.push_back(a);
  auto env = key_env();
  // Longer than any stall of a live worker on a loaded machine (its heartbeat renews a
  // third of the way through): only the killed worker's claims may change hands.
  env["LENS_CLAIM_LEASE_SECONDS"] = "60";
  std::vector<pid_t> workers;
  for (int i = 0; i < 4; ++i)
    workers.push_back(spawn(args, env, fmt::format("worker{}.log", i)));
  lens::test::wait_until([&] { return stat(*provider, "ok_inputs") >= 3000; }, 120s);
  EXPECT_EQ(lens::test::kill_and_wait(workers[1], SIGKILL), 128 + SIGKILL);
  // What the killed worker held when it died: at most this many may be embedded twice
  // (after its lease ended), never more.
  const long long orphaned =
      scalar(fmt::format("SELECT count(*) FROM embedding_claims WHERE worker LIKE '%:{}'", workers[1]));
  // Its lease ends now instead of in a minute: the others take its claims over.
  exec(fmt::format(
      "UPDATE embedding_claims SET expires_at = now() - interval '1 second' WHERE worker LIKE '%:{}'",
      workers[1]));
  for (int i : {0, 2, 3}) {
    EXPECT_EQ(lens::test::wait_exit(workers[static_cast<std::size_t>(i)]), 0)
        << log(fmt::format("worker{}.log", i));
  }
  EXPECT_EQ(rows(), 20000);
  EXPECT_EQ(scalar("SELECT count(DISTINCT user_message_id) FROM message_embeddings"), 20000);
  EXPECT_EQ(scalar("SELECT count(*) FROM embedding_claims WHERE expires_at > now()"), 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM embedding_failures"), 0);
  const long long sent = stat(*provider, "ok_inputs");
  EXPECT_GE(sent, 20000);
  EXPECT_LE(sent, 20000 + std::max(orphaned, 0LL)) << "duplicates beyond the dead worker's claims";
  // Every surviving worker did a share of the work.
  EXPECT_EQ(scalar("SELECT count(*) FROM embedding_runs WHERE status = 'completed' AND embedded > 0"), 3);
}

TEST_F(PgE2E, FollowEmbedsNewAndEditedMessagesWithinSecondsAndStopsOnSigterm) {
  ASSERT_EQ(run({"init", "--db", db_url_}), 0) << log("run.log");
  corpus(200);
  const pid_t pid =
      spawn({"run", "--db", db_url_, "--provider", "local-hash", "--model", "local-hash", "--follow"}, {},
            "follow.log");
  auto wait_for = [&](const std::string& sql, long long want, std::chrono::seconds limit) {
    const auto deadline = Clock::now() + limit;
    long long got = -1;
    while (Clock::now() < deadline) {
      got = scalar(sql);
      if (got == want) return true;
      std::this_thread::sleep_for(100ms);
    }
    ADD_FAILURE() << sql << " gave " << got << ", wanted " << want << "\n" << log("follow.log");
    return false;
  };
  const std::string count_sql = "SELECT count(*) FROM message_embeddings WHERE provider = 'local-hash'";
  ASSERT_TRUE(wait_for(count_sql, 200, 60s));
  const std::string old_sha =
      "SELECT encode(content_sha256, 'hex') FROM message_embeddings WHERE user_message_id = "
      "'00000000-0000-4000-a000-000000000007'";
  const std::string before = db_->scalar(old_sha).value_or("");

  corpus(5, 100000);  // new exchanges
  exec(
      "UPDATE messages SET content = 'An edited question about photosynthesis', updated_at = now() "
      "WHERE id = '00000000-0000-4000-a000-000000000007'");
  const auto t0 = Clock::now();
  ASSERT_TRUE(wait_for(count_sql, 205, 20s));
  const auto deadline = Clock::now() + 20s;
  std::string after = before;
  while (Clock::now() < deadline && after == before) {
    after = db_->scalar(old_sha).value_or("");
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_NE(after, before) << "the edited message was not re-embedded";
  EXPECT_LT(Clock::now() - t0, 15s);
  EXPECT_EQ(scalar(count_sql), 205);

  const auto stop_start = Clock::now();
  const int code = lens::test::kill_and_wait(pid, SIGTERM);
  EXPECT_LT(Clock::now() - stop_start, 15s);
  EXPECT_TRUE(code == 0 || code == 1) << code << "\n" << log("follow.log");
  EXPECT_EQ(scalar("SELECT count(*) FROM embedding_runs WHERE status = 'running'"), 0);
}

}  // namespace
