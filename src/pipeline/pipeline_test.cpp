// The pipeline end to end in-process: real SQLite file, real tokenizer, local-hash.
#include <gtest/gtest.h>

#include <sqlite3.h>

#include <fmt/core.h>
#include <filesystem>
#include <thread>

#include "core/input_text.h"
#include "pipeline/pipeline.h"
#include "provider/local_hash.h"
#include "store/sqlite/sqlite_store.h"

namespace lens::pipeline {
namespace {

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             fmt::format("pipeline_test_{}_{}.db", ::getpid(), counter_++))
                .string();
    std::filesystem::remove(path_);
    // The source tables are Lens's: the store never creates them.
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db_), SQLITE_OK);
    exec(
        "CREATE TABLE conversations (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, title TEXT, created_at "
        "TEXT); "
        "CREATE TABLE messages (id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL REFERENCES "
        "conversations(id), "
        "role TEXT NOT NULL, content TEXT, created_at TEXT NOT NULL, updated_at TEXT)");
    reader_ = std::move(*store::open_sqlite_store(path_, store::AccessMode::read_write));
    writer_ = std::move(*store::open_sqlite_store(path_, store::AccessMode::read_write));
    ASSERT_TRUE(reader_->migrate());
    exec("INSERT INTO conversations (id, user_id) VALUES ('c1', 'u1')");
    auto tok = tokenizer::Tokenizer::load(tokenizer::Encoding::cl100k_base);
    ASSERT_TRUE(tok) << tok.error().message;
    tokenizer_ = *tok;
    options_.scope = {"local-hash", "local-hash-v1", false, false};
    options_.model = core::model_or_default("local-hash-v1");
    options_.batch_size = 7;
  }
  void TearDown() override {
    sqlite3_close(db_);
    reader_.reset();
    writer_.reset();
    for (const char* ext : {"", "-wal", "-shm", ".lens-embed.lock"})
      std::filesystem::remove(path_ + ext);
  }

  void exec(const std::string& sql) {
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  }
  long long scalar(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sqlite3_errmsg(db_);
    long long v = -1;
    if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
  }
  void add_message(const std::string& id, const std::string& role, const std::string& content, int t) {
    exec(
        fmt::format("INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES "
                    "('{}', 'c1', '{}', '{}', '2024-01-01T00:{:02}:{:02}Z')",
                    id, role, content, t / 60, t % 60));
  }
  RunOutcome run() {
    provider::LocalHashProvider provider;
    RunDeps deps{*reader_, *writer_, provider, *tokenizer_, nullptr, nullptr, "{}", "test"};
    return run_pipeline(options_, deps);
  }

  static inline int counter_ = 0;
  std::string path_;
  sqlite3* db_ = nullptr;
  std::unique_ptr<store::Store> reader_, writer_;
  std::shared_ptr<const tokenizer::Tokenizer> tokenizer_;
  RunOptions options_;
};

TEST_F(PipelineTest, EmbedsEveryExchangeOnceAndRerunIsANoOp) {
  for (int i = 0; i < 50; ++i) {
    add_message(fmt::format("u{:03}", i), "user", fmt::format("question number {}", i), 2 * i);
    add_message(fmt::format("a{:03}", i), "assistant", fmt::format("answer {}", i), 2 * i + 1);
  }
  auto first = run();
  ASSERT_FALSE(first.fatal) << first.fatal->message;
  EXPECT_EQ(first.stats.embedded, 50);
  EXPECT_EQ(scalar("SELECT count(*) FROM message_embeddings"), 50);
  EXPECT_EQ(scalar("SELECT count(*) FROM message_embeddings WHERE assistant_message_id = 'a' || "
                   "substr(user_message_id, 2)"),
            50);
  EXPECT_EQ(scalar("SELECT status = 'completed' AND embedded = 50 FROM embedding_runs WHERE id = " +
                   std::to_string(first.run_id)),
            1);
  auto second = run();
  EXPECT_EQ(second.stats.requests, 0);
  EXPECT_EQ(second.stats.embedded, 0);
}

TEST_F(PipelineTest, StoredVectorIsLocalHashOfRecordedInput) {
  add_message("u1", "user", "What is photosynthesis?", 0);
  add_message("a1", "assistant", "Plants turn light into sugar.", 1);
  ASSERT_FALSE(run().fatal);
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db_, "SELECT embedding, content_sha256, token_count FROM message_embeddings",
                               -1, &s, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  const std::string input = "What is photosynthesis?\n\nPlants turn light into sugar.";
  std::vector<float> expected(384);
  provider::local_hash_embed(input, expected);
  ASSERT_EQ(static_cast<std::size_t>(sqlite3_column_bytes(s, 0)), expected.size() * 4);
  EXPECT_EQ(std::memcmp(sqlite3_column_blob(s, 0), expected.data(), expected.size() * 4), 0);
  const auto sha = util::sha256(input);
  EXPECT_EQ(std::memcmp(sqlite3_column_blob(s, 1), sha.data(), 32), 0);
  EXPECT_EQ(sqlite3_column_int(s, 2), static_cast<int>(tokenizer_->count(input)));
  sqlite3_finalize(s);
}

TEST_F(PipelineTest, LimitEmbedsExactlyN) {
  for (int i = 0; i < 30; ++i)
    add_message(fmt::format("u{:03}", i), "user", fmt::format("q {}", i), i);
  options_.limit = 11;
  EXPECT_EQ(run().stats.embedded, 11);
  EXPECT_EQ(scalar("SELECT count(*) FROM message_embeddings"), 11);
  options_.limit.reset();
  EXPECT_EQ(run().stats.embedded, 19);
}

TEST_F(PipelineTest, EditReembedsOnlyThatExchangeInPlace) {
  for (int i = 0; i < 10; ++i)
    add_message(fmt::format("u{:03}", i), "user", fmt::format("q {}", i), i);
  ASSERT_EQ(run().stats.embedded, 10);
  exec("UPDATE messages SET content = 'edited', updated_at = '2024-02-01T00:00:00Z' WHERE id = 'u003'");
  auto again = run();
  EXPECT_EQ(again.stats.embedded, 1);
  EXPECT_EQ(scalar("SELECT count(*) FROM message_embeddings"), 10);
  EXPECT_EQ(scalar("SELECT count(*) FROM message_embeddings WHERE user_message_id = 'u003' AND "
                   "source_version = '2024-02-01T00:00:00Z'"),
            1);
  // A touched timestamp with the same content: no provider call, markers refreshed.
  exec("UPDATE messages SET updated_at = '2024-03-01T00:00:00Z' WHERE id = 'u004'");
  auto touch = run();
  EXPECT_EQ(touch.stats.embedded, 0);
  EXPECT_EQ(touch.stats.unchanged, 1);
  EXPECT_EQ(touch.stats.requests, 0);
  EXPECT_EQ(run().stats.unchanged, 0);
}

TEST_F(PipelineTest, ForceReembedsInPlace) {
  for (int i = 0; i < 5; ++i)
    add_message(fmt::format("u{:03}", i), "user", fmt::format("q {}", i), i);
  ASSERT_EQ(run().stats.embedded, 5);
  exec("UPDATE message_embeddings SET updated_at = '2000-01-01T00:00:00Z'");
  options_.scope.force = true;
  EXPECT_EQ(run().stats.embedded, 5);
  EXPECT_EQ(scalar("SELECT count(*) FROM message_embeddings"), 5);
  EXPECT_EQ(scalar("SELECT count(*) FROM message_embeddings WHERE updated_at > '2001'"), 5);
}

TEST_F(PipelineTest, BlankContentIsNeverSent) {
  exec(
      "INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES "
      "('n', 'c1', 'user', NULL, '2024-01-01T00:00:01Z'), ('e', 'c1', 'user', '', '2024-01-01T00:00:02Z'), "
      "('w', 'c1', 'user', ' \t\n', '2024-01-01T00:00:03Z'), "
      "('nb', 'c1', 'user', char(160) || char(12288), '2024-01-01T00:00:04Z'), "
      "('ok', 'c1', 'user', 'real question', '2024-01-01T00:00:05Z')");
  auto out = run();
  EXPECT_EQ(out.stats.embedded, 1);
  EXPECT_EQ(scalar("SELECT count(*) FROM message_embeddings"), 1);
  EXPECT_EQ(
      scalar(
          "SELECT count(*) FROM embedding_failures WHERE user_message_id = 'nb' AND reason = 'empty_input'"),
      1);
  EXPECT_EQ(run().stats.failed, 0);  // recorded once, not re-read
}

TEST_F(PipelineTest, InvalidUtf8IsRepairedNotFatal) {
  exec(
      "INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES "
      "('x', 'c1', 'user', CAST(X'48C3FFEDA08021' AS TEXT), '2024-01-01T00:00:01Z')");
  auto out = run();
  ASSERT_FALSE(out.fatal);
  EXPECT_EQ(out.stats.embedded, 1);
}

TEST_F(PipelineTest, OverlongInputIsTruncatedToTheLimit) {
  options_.model.max_input_tokens = 50;
  std::string words;
  for (int i = 0; i < 200; ++i)
    words += fmt::format("word{} ", i);
  add_message("long", "user", words, 0);
  add_message("short", "user", "tiny", 1);
  auto out = run();
  EXPECT_EQ(out.stats.truncated, 1);
  EXPECT_EQ(scalar("SELECT truncated FROM message_embeddings WHERE user_message_id = 'long'"), 1);
  EXPECT_LE(scalar("SELECT token_count FROM message_embeddings WHERE user_message_id = 'long'"), 50);
  EXPECT_GE(scalar("SELECT token_count FROM message_embeddings WHERE user_message_id = 'long'"), 45);
  EXPECT_EQ(scalar("SELECT truncated FROM message_embeddings WHERE user_message_id = 'short'"), 0);
}

TEST_F(PipelineTest, ChunkModeStoresTokenWeightedMean) {
  options_.model.max_input_tokens = 40;
  options_.long_input = LongInput::chunk;
  std::string words;
  for (int i = 0; i < 100; ++i)
    words += fmt::format("token{} ", i);
  add_message("long", "user", words, 0);
  ASSERT_EQ(run().stats.embedded, 1);
  // Recompute: mean of local-hash vectors of the chunks, weighted by their tokens.
  std::vector<double> sum(384, 0.0);
  for (std::string_view piece : tokenizer_->chunk(words, 40, 0)) {
    std::vector<float> v(384);
    provider::local_hash_embed(piece, v);
    const double w = static_cast<double>(tokenizer_->count(piece));
    for (std::size_t d = 0; d < v.size(); ++d)
      sum[d] += w * v[d];
  }
  double norm = 0;
  for (double x : sum)
    norm += x * x;
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db_, "SELECT embedding, truncated, token_count FROM message_embeddings", -1,
                               &s, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  const auto* stored = static_cast<const float*>(sqlite3_column_blob(s, 0));
  for (std::size_t d = 0; d < 384; ++d)
    EXPECT_NEAR(stored[d], sum[d] / std::sqrt(norm), 1e-5);
  EXPECT_EQ(sqlite3_column_int(s, 1), 0);
  EXPECT_EQ(sqlite3_column_int(s, 2), static_cast<int>(tokenizer_->count(words)));
  sqlite3_finalize(s);
}

TEST_F(PipelineTest, ProgressIsReportedOnTheCallingThreadWithTheLimitInForce) {
  for (int i = 0; i < 20; ++i)
    add_message(fmt::format("u{:03}", i), "user", fmt::format("q {}", i), i);
  struct Listener : ProgressListener {
    void on_progress(const ProgressSnapshot& s) override {
      on_caller = on_caller && std::this_thread::get_id() == caller;
      last = s;
      ++calls;
    }
    std::thread::id caller = std::this_thread::get_id();
    bool on_caller = true;
    ProgressSnapshot last;
    int calls = 0;
  } listener;
  options_.rate.tokens_per_minute = 1e9;  // local-hash sends no x-ratelimit headers to adopt
  provider::LocalHashProvider provider;
  RunDeps deps{*reader_, *writer_, provider, *tokenizer_, &listener, nullptr, "{}", "test"};
  const RunOutcome out = run_pipeline(options_, deps);
  ASSERT_FALSE(out.fatal);
  ASSERT_GE(listener.calls, 1);
  EXPECT_TRUE(listener.on_caller);
  EXPECT_TRUE(listener.last.final);
  EXPECT_EQ(listener.last.total, 20);
  EXPECT_EQ(listener.last.handled, 20);
  EXPECT_EQ(listener.last.stats.embedded, 20);
  EXPECT_EQ(listener.last.in_flight, 0);
  EXPECT_DOUBLE_EQ(listener.last.tpm_limit, 1e9);
}

TEST_F(PipelineTest, DryRunWritesNothing) {
  for (int i = 0; i < 5; ++i)
    add_message(fmt::format("u{:03}", i), "user", fmt::format("q {}", i), i);
  options_.dry_run = true;
  auto out = run();
  ASSERT_TRUE(out.dry_run);
  EXPECT_EQ(out.dry_run->exchanges, 5);
  EXPECT_EQ(out.dry_run->new_rows, 5);
  EXPECT_GT(out.dry_run->tokens, 5);
  EXPECT_EQ(scalar("SELECT count(*) FROM message_embeddings"), 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM embedding_runs"), 0);
}

}  // namespace
}  // namespace lens::pipeline
