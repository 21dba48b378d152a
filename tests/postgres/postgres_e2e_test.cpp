// End-to-end tests of the real lens-embed binary on real PostgreSQL: the old pipeline's
// 7000/6000 check, a server restart mid-run, 4 workers with one SIGKILLed, --follow.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/core.h>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "stand_in_server.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string state_value(const std::string& state_file, const std::string& key) {
  std::istringstream in(slurp(state_file));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
  return {};
}

// A throwaway server of our own (for the restart test), or the ctest run's shared one.
class Server {
 public:
  // durable: synchronous_commit on, so crashing it keeps every acknowledged commit (the
  // shared server runs with it off, for speed).
  static std::unique_ptr<Server> own(bool durable = false) {
    auto s = std::unique_ptr<Server>(new Server);
    s->state_ =
        (fs::temp_directory_path() / fmt::format("lens-pg-e2e-{}-{}.env", getpid(), counter_++)).string();
    if (std::system(fmt::format("{}/scripts/pg-test-server.sh start {} {} >/dev/null", LENS_SOURCE_DIR,
                                s->state_, durable ? "--durable" : "")
                        .c_str()) != 0)
      return nullptr;
    s->owned_ = true;
    return s;
  }
  static std::unique_ptr<Server> shared() {
    const char* state = std::getenv("LENS_TEST_PG_STATE");
    if (!state || !fs::exists(state)) return own();
    auto s = std::unique_ptr<Server>(new Server);
    s->state_ = state;
    return s;
  }
  ~Server() {
    if (owned_)
      (void)std::system(
          fmt::format("{}/scripts/pg-test-server.sh stop {} >/dev/null 2>&1", LENS_SOURCE_DIR, state_)
              .c_str());
  }
  std::string url() const { return state_value(state_, "PGTEST_URL"); }
  bool restart(int down_seconds) const {
    return std::system(fmt::format("{}/scripts/pg-test-server.sh restart {} {}", LENS_SOURCE_DIR, state_,
                                   down_seconds)
                           .c_str()) == 0;
  }

 private:
  Server() = default;
  std::string state_;
  bool owned_ = false;
  static inline int counter_ = 0;
};

class PgE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = Server::shared();
    ASSERT_TRUE(server_) << "cannot start PostgreSQL (scripts/pg-test-server.sh)";
    connect_schema();
  }
  void TearDown() override {
    if (admin_) {
      PQclear(PQexec(admin_, fmt::format("DROP SCHEMA IF EXISTS {} CASCADE", schema_).c_str()));
      PQfinish(admin_);
    }
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  void connect_schema() {
    static int n = 0;
    schema_ = fmt::format("e2e_{}_{}", getpid(), n++);
    dir_ = fs::temp_directory_path() / schema_;
    fs::create_directories(dir_);
    if (admin_) PQfinish(admin_);
    admin_ = PQconnectdb(server_->url().c_str());
    ASSERT_EQ(PQstatus(admin_), CONNECTION_OK) << PQerrorMessage(admin_);
    PQsetNoticeProcessor(
        admin_, [](void*, const char*) {}, nullptr);
    exec(fmt::format("CREATE SCHEMA IF NOT EXISTS {0}; SET search_path = {0}", schema_));
    db_url_ = fmt::format("{}?options=-csearch_path%3D{}", server_->url(), schema_);
  }
  // The admin connection does not survive a server restart: reconnect after one.
  void reconnect() {
    PQfinish(admin_);
    admin_ = PQconnectdb(server_->url().c_str());
    ASSERT_EQ(PQstatus(admin_), CONNECTION_OK) << PQerrorMessage(admin_);
    PQsetNoticeProcessor(
        admin_, [](void*, const char*) {}, nullptr);
    exec(fmt::format("SET search_path = {}", schema_));
  }

  void exec(const std::string& sql) {
    PGresult* r = PQexec(admin_, sql.c_str());
    const auto st = PQresultStatus(r);
    EXPECT_TRUE(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) << PQresultErrorMessage(r) << sql;
    PQclear(r);
  }
  long long scalar(const std::string& sql) {
    PGresult* r = PQexec(admin_, sql.c_str());
    long long v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
      v = std::strtoll(PQgetvalue(r, 0, 0), nullptr, 10);
    else
      ADD_FAILURE() << PQresultErrorMessage(r) << sql;
    PQclear(r);
    return v;
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

  // Starts lens-embed with `args`; the environment is ours minus any database/provider
  // settings, plus `env`.
  pid_t spawn(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
              const std::string& log_name) {
    const fs::path log = dir_ / log_name;
    const pid_t pid = fork();
    if (pid == 0) {
      std::vector<std::string> vars;
      for (char** e = environ; *e; ++e) {
        const std::string v = *e;
        if (v.starts_with("LENS_") || v.starts_with("DATABASE_URL=") || v.starts_with("POSTGRES_") ||
            v.starts_with("SUPERMIND_") || v.starts_with("OPENAI_") || v.starts_with("PG"))
          continue;
        vars.push_back(v);
      }
      for (const auto& [k, v] : env)
        vars.push_back(k + "=" + v);
      vars.push_back("NO_PROXY=127.0.0.1,localhost");
      std::vector<char*> envp;
      for (auto& v : vars)
        envp.push_back(v.data());
      envp.push_back(nullptr);
      if (chdir(dir_.c_str()) != 0) _exit(127);
      FILE* o = freopen(log.c_str(), "w", stdout);
      FILE* e = freopen((log.string() + ".err").c_str(), "w", stderr);
      (void)o;
      (void)e;
      std::vector<std::string> full = args;
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(LENS_EMBED_BIN));
      for (auto& a : full)
        argv.push_back(a.data());
      argv.push_back(nullptr);
      execve(LENS_EMBED_BIN, argv.data(), envp.data());
      _exit(127);
    }
    return pid;
  }
  static int wait_exit(pid_t pid) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
  }
  int run(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {},
          const std::string& log_name = "run.log") {
    return wait_exit(spawn(args, env, log_name));
  }
  std::string log(const std::string& name) { return slurp(dir_ / name) + slurp(dir_ / (name + ".err")); }

  std::unique_ptr<lens::stand_in::StandInServer> stand_in(double latency_ms = 0) {
    lens::stand_in::StandInOptions o;
    o.default_dimensions = 3072;
    o.latency_ms = latency_ms;
    o.api_key = "sk-test-e2e-key";
    auto s = std::make_unique<lens::stand_in::StandInServer>(o);
    EXPECT_GT(s->start(), 0);
    return s;
  }
  std::vector<std::string> supermind(const lens::stand_in::StandInServer& s) const {
    return {"--provider", "supermind",
            "--model",    "text-embedding-3-large",
            "--base-url", fmt::format("http://127.0.0.1:{}/v1", s.port())};
  }
  static std::map<std::string, std::string> key_env() { return {{"SUPERMIND_API_KEY", "sk-test-e2e-key"}}; }

  static long long stat(const lens::stand_in::StandInServer& s, const std::string& name) {
    const std::string json = s.stats_json();
    const auto at = json.find("\"" + name + "\":");
    if (at == std::string::npos) return 0;
    return std::strtoll(json.c_str() + at + name.size() + 3, nullptr, 10);
  }

  long long rows(const std::string& provider = "supermind",
                 const std::string& model = "text-embedding-3-large") {
    return scalar(fmt::format(
        "SELECT count(*) FROM message_embeddings WHERE provider = '{}' AND model = '{}'", provider, model));
  }

  std::unique_ptr<Server> server_;
  PGconn* admin_ = nullptr;
  std::string schema_, db_url_;
  fs::path dir_;
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
  server_ = Server::own(true);
  ASSERT_TRUE(server_);
  connect_schema();
  ASSERT_EQ(run({"init", "--db", db_url_}), 0) << log("run.log");
  corpus(6000);
  auto provider = stand_in(40);
  std::vector<std::string> args = {"run",           "--db", db_url_,        "--batch-size", "16",
                                   "--concurrency", "4",    "--dimensions", "256"};
  for (const auto& a : supermind(*provider))
    args.push_back(a);
  const pid_t pid = spawn(args, key_env(), "restart.log");
  // Wait until some rows are committed, then crash-restart the server (down 2 s).
  const auto deadline = Clock::now() + 60s;
  while (Clock::now() < deadline && stat(*provider, "ok_inputs") < 800)
    std::this_thread::sleep_for(50ms);
  ASSERT_GE(stat(*provider, "ok_inputs"), 800) << log("restart.log");
  ASSERT_TRUE(server_->restart(2));
  const int code = wait_exit(pid);
  reconnect();
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
  env["LENS_CLAIM_LEASE_SECONDS"] = "6";
  std::vector<pid_t> workers;
  for (int i = 0; i < 4; ++i)
    workers.push_back(spawn(args, env, fmt::format("worker{}.log", i)));
  const auto deadline = Clock::now() + 60s;
  while (Clock::now() < deadline && stat(*provider, "ok_inputs") < 3000)
    std::this_thread::sleep_for(20ms);
  ASSERT_EQ(kill(workers[1], SIGKILL), 0);
  EXPECT_EQ(wait_exit(workers[1]), 128 + SIGKILL);
  // What the killed worker held when it died: at most this many may be embedded twice
  // (after its lease ended), never more.
  const long long orphaned =
      scalar(fmt::format("SELECT count(*) FROM embedding_claims WHERE worker LIKE '%:{}'", workers[1]));
  for (int i : {0, 2, 3}) {
    EXPECT_EQ(wait_exit(workers[static_cast<std::size_t>(i)]), 0) << log(fmt::format("worker{}.log", i));
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
  PGresult* r = PQexec(admin_, old_sha.c_str());
  const std::string before = PQntuples(r) ? PQgetvalue(r, 0, 0) : "";
  PQclear(r);

  corpus(5, 100000);  // new exchanges
  exec(
      "UPDATE messages SET content = 'An edited question about photosynthesis', updated_at = now() "
      "WHERE id = '00000000-0000-4000-a000-000000000007'");
  const auto t0 = Clock::now();
  ASSERT_TRUE(wait_for(count_sql, 205, 20s));
  const auto deadline = Clock::now() + 20s;
  std::string after = before;
  while (Clock::now() < deadline && after == before) {
    r = PQexec(admin_, old_sha.c_str());
    after = PQntuples(r) ? PQgetvalue(r, 0, 0) : "";
    PQclear(r);
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_NE(after, before) << "the edited message was not re-embedded";
  EXPECT_LT(Clock::now() - t0, 15s);
  EXPECT_EQ(scalar(count_sql), 205);

  ASSERT_EQ(kill(pid, SIGTERM), 0);
  const auto stop_start = Clock::now();
  const int code = wait_exit(pid);
  EXPECT_LT(Clock::now() - stop_start, 15s);
  EXPECT_TRUE(code == 0 || code == 1) << code << "\n" << log("follow.log");
  EXPECT_EQ(scalar("SELECT count(*) FROM embedding_runs WHERE status = 'running'"), 0);
}

}  // namespace
