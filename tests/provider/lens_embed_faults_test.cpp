// Fault tests through the real lens-embed binary against the stand-in provider: for
// every fault, the run either retries and embeds (vectors checked bit for bit) or
// records the right failure reason; the API key appears in no output and no log line.
#include <gtest/gtest.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/input_text.h"
#include "stand_in_server.h"
#include "stand_in_vector.h"

extern char** environ;

namespace lens::provider {
namespace {

namespace fs = std::filesystem;
constexpr const char* k_key = "sk-e2e-4b1d9a7c3e5f8a2b6c0d";
constexpr int k_dims = 16;
constexpr int k_exchanges = 30;

struct Output {
  int exit_code = -1;
  std::string out, err, log;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void exec(sqlite3* db, const std::string& sql) {
  char* msg = nullptr;
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &msg), SQLITE_OK) << (msg ? msg : "");
}

// A counter from the stand-in's /stats JSON (0 when absent).
std::int64_t stat(const std::string& json, const std::string& name) {
  const auto at = json.find("\"" + name + "\":");
  return at == std::string::npos ? 0 : std::stoll(json.substr(at + name.size() + 3));
}

class LensEmbedFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("lens_faults_" + std::to_string(::getpid()) + "_" +
                                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    db_path_ = (dir_ / "lens.db").string();
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_path_.c_str(), &db), SQLITE_OK);
    exec(db,
         "CREATE TABLE conversations (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, title TEXT, created_at "
         "TEXT NOT NULL);"
         "CREATE TABLE messages (id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, role TEXT NOT NULL, "
         "content TEXT,"
         " created_at TEXT NOT NULL, updated_at TEXT);"
         "INSERT INTO conversations VALUES ('c0', 'u0', 't', '2024-01-01T00:00:00Z');");
    for (int i = 0; i < k_exchanges; ++i) {
      char ts_user[32], ts_answer[32];
      std::snprintf(ts_user, sizeof ts_user, "2024-01-01T00:%02d:%02dZ", i / 60, i % 60);
      std::snprintf(ts_answer, sizeof ts_answer, "2024-01-01T01:%02d:%02dZ", i / 60, i % 60);
      const std::string user = "u" + std::to_string(i);
      // Answers come after all questions, so only the last question has one.
      std::string content =
          "question " + std::to_string(i) + " about \"topic\" \xC3\xA9t\xC3\xA9 \xF0\x9F\x98\x80";
      if (i == 7) content = "this one carries the POISON marker";
      exec(db, "INSERT INTO messages VALUES ('" + user + "', 'c0', 'user', '" + content + "', '" + ts_user +
                   "', NULL);");
      texts_[user] = content;
    }
    exec(db,
         "INSERT INTO messages VALUES ('a_last', 'c0', 'assistant', 'the answer', '2024-01-01T02:00:00Z', "
         "NULL);");
    core::Exchange last;
    last.user_content = texts_["u" + std::to_string(k_exchanges - 1)];
    last.assistant_message_id = "a_last";
    last.assistant_content = "the answer";
    texts_["u" + std::to_string(k_exchanges - 1)] = core::build_input_text(last);
    sqlite3_close(db);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // Starts the stand-in (key check on), runs lens-embed run against it, stops the server.
  Output run(stand_in::StandInOptions so, std::vector<std::string> extra_args = {}, std::string key = k_key) {
    if (so.api_key.empty()) so.api_key = k_key;
    server_ = std::make_unique<stand_in::StandInServer>(so);
    const int port = server_->start();
    EXPECT_GT(port, 0);
    std::vector<std::string> args = {LENS_EMBED_BINARY,
                                     "run",
                                     "--db",
                                     "sqlite:" + db_path_,
                                     "--provider",
                                     "supermind",
                                     "--base-url",
                                     "http://127.0.0.1:" + std::to_string(port) + "/v1",
                                     "--model",
                                     "text-embedding-3-small",
                                     "--dimensions",
                                     std::to_string(k_dims),
                                     "--json",
                                     "--verbose",
                                     "--log-file",
                                     (dir_ / "run.log").string()};
    // Defaults unless the test gives its own value (the cli refuses a repeated option).
    for (const auto& [flag, value] :
         {std::pair<std::string, std::string>{"--batch-size", "4"}, {"--max-attempts", "6"}}) {
      if (std::find(extra_args.begin(), extra_args.end(), flag) == extra_args.end()) {
        args.push_back(flag);
        args.push_back(value);
      }
    }
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<std::string> env_store;
    for (char** e = environ; *e; ++e) {
      const std::string_view v = *e;
      if (v.starts_with("SUPERMIND_") || v.starts_with("OPENAI_") || v.starts_with("LENS_")) continue;
      env_store.emplace_back(v);
    }
    env_store.push_back("SUPERMIND_API_KEY=" + key);
    env_store.push_back("NO_PROXY=127.0.0.1,localhost");
    env_store.push_back("no_proxy=127.0.0.1,localhost");
    env_store.push_back(std::string("LENS_DATA_DIR=") + LENS_SOURCE_DATA_DIR);
    std::vector<char*> argv, envp;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env_store)
      envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    const std::string out_path = (dir_ / "stdout").string(), err_path = (dir_ / "stderr").string();
    posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addchdir_np(&fa, dir_.c_str());
    pid_t pid = 0;
    Output o;
    if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data()) != 0) {
      ADD_FAILURE() << "cannot start " << argv[0];
      return o;
    }
    posix_spawn_file_actions_destroy(&fa);
    int status = 0;
    ::waitpid(pid, &status, 0);
    o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    o.out = slurp(out_path);
    o.err = slurp(err_path);
    o.log = slurp(dir_ / "run.log");
    stats_ = server_->stats_json();
    server_->stop();
    return o;
  }

  // user_message_id -> embedding; failures: user_message_id -> reason.
  std::map<std::string, std::vector<float>> rows() {
    std::map<std::string, std::vector<float>> out;
    sqlite3* db = nullptr;
    sqlite3_open(db_path_.c_str(), &db);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "SELECT user_message_id, embedding FROM message_embeddings", -1, &st, nullptr);
    while (sqlite3_step(st) == SQLITE_ROW) {
      std::vector<float> v(static_cast<std::size_t>(sqlite3_column_bytes(st, 1)) / 4);
      std::memcpy(v.data(), sqlite3_column_blob(st, 1), v.size() * 4);
      out[reinterpret_cast<const char*>(sqlite3_column_text(st, 0))] = std::move(v);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
  }
  std::map<std::string, std::string> failures(std::string* details = nullptr) {
    std::map<std::string, std::string> out;
    sqlite3* db = nullptr;
    sqlite3_open(db_path_.c_str(), &db);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "SELECT user_message_id, reason, coalesce(detail, '') FROM embedding_failures", -1,
                       &st, nullptr);
    while (sqlite3_step(st) == SQLITE_ROW) {
      out[reinterpret_cast<const char*>(sqlite3_column_text(st, 0))] =
          reinterpret_cast<const char*>(sqlite3_column_text(st, 1));
      if (details) *details += std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 2))) + "\n";
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
  }
  std::string runs_table() {
    std::string all;
    sqlite3* db = nullptr;
    sqlite3_open(db_path_.c_str(), &db);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db,
                       "SELECT coalesce(arguments, '') || ' ' || coalesce(worker, '') FROM embedding_runs",
                       -1, &st, nullptr);
    while (sqlite3_step(st) == SQLITE_ROW)
      all += reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return all;
  }

  // Every exchange embedded with exactly the stand-in's vector, except `missing`.
  void expect_all_embedded(const std::set<std::string>& missing = {}) {
    const auto got = rows();
    for (const auto& [id, text] : texts_) {
      if (missing.contains(id)) {
        EXPECT_FALSE(got.contains(id)) << id;
        continue;
      }
      auto it = got.find(id);
      ASSERT_NE(it, got.end()) << "not embedded: " << id;
      std::vector<float> want(k_dims);
      stand_in::stand_in_vector(text, want);
      EXPECT_EQ(it->second, want) << id;
    }
  }

  static stand_in::StandInOptions poison() {
    stand_in::StandInOptions so;
    so.reject_marker = "POISON";
    return so;
  }

  fs::path dir_;
  std::string db_path_;
  std::map<std::string, std::string> texts_;
  std::unique_ptr<stand_in::StandInServer> server_;
  std::string stats_;
};

#define EXPECT_EXIT_CODE(o, code) \
  EXPECT_EQ((o).exit_code, code) << "stdout:\n" << (o).out << "\nstderr:\n" << (o).err

TEST_F(LensEmbedFaults, CleanRunWithShuffledDataEmbedsEverythingExactly) {
  auto so = poison();
  so.shuffle = true;
  const Output o = run(so);
  EXPECT_EXIT_CODE(o, 0);
  expect_all_embedded({"u7"});
  EXPECT_EQ(failures(), (std::map<std::string, std::string>{{"u7", "context_length"}}));
}

TEST_F(LensEmbedFaults, ContextLength400IsolatesTheOneBadInput) {
  const Output o = run(poison(), {"--batch-size", "16"});
  EXPECT_EXIT_CODE(o, 0);
  std::string details;
  EXPECT_EQ(failures(&details), (std::map<std::string, std::string>{{"u7", "context_length"}}));
  EXPECT_NE(details.find("maximum context length"), std::string::npos) << details;
  expect_all_embedded({"u7"});
  // Bisection: the 16-input batch with u7 was split until u7 stood alone.
  EXPECT_GE(stat(stats_, "status_400_context"), 4);
}

#define FAULT_RETRIED_AND_EMBEDDED(name, field, counter) \
  TEST_F(LensEmbedFaults, name) {                        \
    auto so = poison();                                  \
    so.field = 1;                                        \
    so.fault_limit = 3;                                  \
    so.hang_ms = 4000;                                   \
    const Output o = run(so, {"--timeout", "1"});        \
    EXPECT_EXIT_CODE(o, 0);                              \
    EXPECT_EQ(stat(stats_, counter), 3) << stats_;       \
    expect_all_embedded({"u7"});                         \
    EXPECT_EQ(failures().size(), 1u);                    \
  }

FAULT_RETRIED_AND_EMBEDDED(Status500IsRetriedAndEmbedded, p_500, "fault_status_500")
FAULT_RETRIED_AND_EMBEDDED(Status502IsRetriedAndEmbedded, p_502, "fault_status_502")
FAULT_RETRIED_AND_EMBEDDED(Status503IsRetriedAndEmbedded, p_503, "fault_status_503")
FAULT_RETRIED_AND_EMBEDDED(ConnectionResetIsRetriedAndEmbedded, p_reset, "fault_reset")
FAULT_RETRIED_AND_EMBEDDED(HangTimesOutAndIsRetried, p_hang, "fault_hang")
FAULT_RETRIED_AND_EMBEDDED(MalformedJsonIsRetriedAndEmbedded, p_malformed, "fault_malformed")
FAULT_RETRIED_AND_EMBEDDED(TruncatedBodyIsRetriedAndEmbedded, p_truncated, "fault_truncated")
FAULT_RETRIED_AND_EMBEDDED(ShortResponseIsRetriedAndEmbedded, p_short, "fault_short")
FAULT_RETRIED_AND_EMBEDDED(NanValueIsRetriedAndEmbedded, p_nan, "fault_nan")
FAULT_RETRIED_AND_EMBEDDED(WrongDimensionsAreRetriedAndEmbedded, p_bad_dims, "fault_bad_dims")
FAULT_RETRIED_AND_EMBEDDED(Injected429IsRetriedAndEmbedded, p_429, "fault_injected_429")

TEST_F(LensEmbedFaults, PersistentInvalidResponsesAreRecordedAsInvalidResponse) {
  auto so = poison();
  so.p_nan = 1;
  const Output o = run(so, {"--max-attempts", "2", "--limit", "8"});
  EXPECT_EXIT_CODE(o, 0);
  const auto f = failures();
  EXPECT_EQ(rows().size(), 0u);
  ASSERT_FALSE(f.empty());
  for (const auto& [id, reason] : f) {
    if (id != "u7") {
      EXPECT_EQ(reason, "invalid_response") << id;
    }
  }
}

TEST_F(LensEmbedFaults, PersistentServerErrorsAreRecordedAndTheRunGoesOn) {
  auto so = poison();
  so.p_503 = 1;
  const Output o = run(so, {"--max-attempts", "2", "--limit", "8"});
  EXPECT_EXIT_CODE(o, 0);
  const auto f = failures();
  EXPECT_EQ(rows().size(), 0u);
  ASSERT_FALSE(f.empty());
  for (const auto& [id, reason] : f) {
    if (id != "u7") {
      EXPECT_EQ(reason, "retries_exhausted") << id;
    }
  }
  // The log names the model and the status of the final answer.
  EXPECT_NE(o.log.find("503"), std::string::npos) << o.log;
  EXPECT_NE(o.log.find("text-embedding-3-small"), std::string::npos) << o.log;
}

TEST_F(LensEmbedFaults, RpmLimitIsRespectedWithoutFailures) {
  auto so = poison();
  so.rpm = 300;            // 5 requests per second; the client is told 10x more
  so.burst_seconds = 0.2;  // a bucket of one request: concurrent requests meet 429s
  const Output o = run(so, {"--rpm", "3000", "--batch-size", "2"});
  EXPECT_EXIT_CODE(o, 0);
  // Whether 429s happen depends on timing (the client adopts the server's limit from
  // the first answer's headers); the outcome may not: everything embedded, no failure.
  EXPECT_GT(stat(stats_, "admitted_requests"), 0) << stats_;
  expect_all_embedded({"u7"});
  EXPECT_EQ(failures().size(), 1u);
}

TEST_F(LensEmbedFaults, TpmLimitIsRespectedWithoutFailures) {
  auto so = poison();
  so.tpm = 3000;  // 50 tokens per second; a 2-input request is ~18 tokens
  so.burst_seconds = 0.2;
  so.retry_after_headers = true;
  const Output o = run(so, {"--tpm", "100000", "--batch-size", "2"});
  EXPECT_EXIT_CODE(o, 0);
  expect_all_embedded({"u7"});
  EXPECT_EQ(failures().size(), 1u);
}

TEST_F(LensEmbedFaults, ServerWithoutBase64GetsFloats) {
  auto so = poison();
  so.reject_base64 = true;
  const Output o = run(so);
  EXPECT_EXIT_CODE(o, 0);
  expect_all_embedded({"u7"});
}

TEST_F(LensEmbedFaults, InsufficientQuotaStopsTheRunWithAClearMessage) {
  auto so = poison();
  so.quota_exhausted = true;
  const Output o = run(so);
  EXPECT_EQ(o.exit_code, 1) << o.err;
  EXPECT_NE((o.out + o.err).find("quota"), std::string::npos) << o.out << o.err;
  EXPECT_EQ(rows().size(), 0u);
  EXPECT_EQ(failures().size(), 0u);  // nothing is the inputs' fault
}

TEST_F(LensEmbedFaults, WrongKeyStopsTheRunAsAConfigurationError) {
  const Output o = run(poison(), {}, "sk-wrong-9c8b7a6f5e4d3c2b1a");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE((o.out + o.err).find("API key"), std::string::npos) << o.out << o.err;
  EXPECT_EQ((o.out + o.err + o.log).find("sk-wrong-9c8b7a6f5e4d3c2b1a"), std::string::npos);
  EXPECT_EQ(rows().size(), 0u);
  EXPECT_EQ(failures().size(), 0u);
  EXPECT_EQ(stat(stats_, "status_401"), stat(stats_, "requests"));
}

TEST_F(LensEmbedFaults, UnknownModelStopsTheRunAsAConfigurationError) {
  auto so = poison();
  so.models = "text-embedding-3-large";
  const Output o = run(so);
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE((o.out + o.err).find("404"), std::string::npos) << o.out << o.err;
  EXPECT_EQ(rows().size(), 0u);
  EXPECT_EQ(failures().size(), 0u);
}

TEST_F(LensEmbedFaults, ApiKeyAppearsInNoOutputNoLogLineAndNoTable) {
  auto so = poison();
  so.p_500 = 0.2;
  so.p_malformed = 0.2;
  so.p_reset = 0.1;
  so.fault_limit = 6;
  so.retry_after_headers = true;
  Output o = run(so, {"--insecure"});
  EXPECT_EXIT_CODE(o, 0);
  std::string details;
  failures(&details);
  std::string everything = o.out + o.err + o.log + details + runs_table();
  EXPECT_FALSE(o.log.empty());
  // A refused key (echoed back masked by the server) must not leak either.
  so = poison();
  so.api_key = "sk-the-server-wants-another-key";
  o = run(so);
  everything += o.out + o.err + o.log + runs_table();
  EXPECT_EQ(everything.find(k_key), std::string::npos) << everything;
  EXPECT_EQ(everything.find(std::string(k_key).substr(3)), std::string::npos);
}

}  // namespace
}  // namespace lens::provider
