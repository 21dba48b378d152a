// The RunObserver hears every event the run's counters count: what it adds up equals the
// run's outcome (the metrics endpoint relies on it), and store retries are heard as one
// "lost" and one "back" per call.
#include "pipeline/observer.h"

#include <fmt/core.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>

#include "pipeline/pipeline.h"
#include "pipeline/store_retry.h"
#include "provider/local_hash.h"
#include "store/sqlite/sqlite_store.h"

namespace lens::pipeline {
namespace {

class Recorder : public RunObserver {
 public:
  void on_request(const RequestReport& r) override {
    std::lock_guard lock(mutex_);
    ++requests_by_status[r.http_status];
    if (r.rate_limited) ++rate_limited;
    if (r.latency.count() < 0) ++negative_latencies;
  }
  void on_retry() override { ++retries; }
  void on_commit(const CommitReport& c) override {
    std::lock_guard lock(mutex_);
    embedded += c.embedded;
    unchanged += c.unchanged;
    tokens += c.tokens;
    for (const auto& f : c.failures)
      ++failures[std::string(core::to_string(f.reason))];
  }
  void on_provider_available(bool) override { ++provider_changes; }
  void on_database_lost() override { ++lost; }
  void on_database_back() override { ++back; }
  bool wants_pending_count() override { return true; }
  void on_pending_count(std::int64_t n) override { pending_counts.push_back(n); }
  void on_oldest_pending(std::optional<std::chrono::system_clock::time_point> t) override {
    std::lock_guard lock(mutex_);
    oldest.push_back(t);
  }
  void on_gauges(const RunGauges& g) override {
    ++gauge_reports;
    if (g.concurrency_limit < 1) ++bad_gauges;
  }

  std::mutex mutex_;
  std::map<int, std::int64_t> requests_by_status;
  std::int64_t rate_limited = 0, negative_latencies = 0, embedded = 0, unchanged = 0, tokens = 0;
  std::map<std::string, std::int64_t> failures;
  std::atomic<int> retries{0}, provider_changes{0}, lost{0}, back{0}, gauge_reports{0}, bad_gauges{0};
  std::vector<std::int64_t> pending_counts;
  std::vector<std::optional<std::chrono::system_clock::time_point>> oldest;
};

class ObserverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ =
        (std::filesystem::temp_directory_path() / fmt::format("observer_test_{}.db", ::getpid())).string();
    std::filesystem::remove(path_);
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db_), SQLITE_OK);
    exec(
        "CREATE TABLE conversations (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, title TEXT, created_at "
        "TEXT); "
        "CREATE TABLE messages (id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL REFERENCES "
        "conversations(id), "
        "role TEXT NOT NULL, content TEXT, created_at TEXT NOT NULL, updated_at TEXT); "
        "INSERT INTO conversations (id, user_id) VALUES ('c1', 'u1')");
    reader_ = std::move(*store::open_sqlite_store(path_, store::AccessMode::read_write));
    writer_ = std::move(*store::open_sqlite_store(path_, store::AccessMode::read_write));
    ASSERT_TRUE(reader_->migrate());
    auto tok = tokenizer::Tokenizer::load(tokenizer::Encoding::cl100k_base);
    ASSERT_TRUE(tok) << tok.error().message;
    tokenizer_ = *tok;
    options_.scope = {"local-hash", "local-hash-v1", false, false};
    options_.model = core::model_or_default("local-hash-v1");
    options_.batch_size = 4;
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

  std::string path_;
  sqlite3* db_ = nullptr;
  std::unique_ptr<store::Store> reader_, writer_;
  std::shared_ptr<const tokenizer::Tokenizer> tokenizer_;
  RunOptions options_;
};

TEST_F(ObserverTest, WhatItHearsAddsUpToTheOutcome) {
  // 20 exchanges; the oldest change is u05's edit (updated_at before every created_at is
  // impossible in Lens, but the observer must take the oldest whatever the order); one
  // user message blank by Unicode (NBSP) becomes an empty_input failure.
  for (int i = 0; i < 20; ++i) {
    exec(
        fmt::format("INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES "
                    "('u{:02}', 'c1', 'user', 'question {}', '2024-01-01T00:00:{:02}Z'), "
                    "('a{:02}', 'c1', 'assistant', 'answer {}', '2024-01-01T00:01:{:02}Z')",
                    i, i, i + 10, i, i, i + 10));
  }
  exec("UPDATE messages SET content = char(160) WHERE id = 'u07'");
  exec("UPDATE messages SET created_at = '2023-12-31 23:00:00+00' WHERE id = 'u05'");
  Recorder rec;
  provider::LocalHashProvider provider;
  RunDeps deps{*reader_, *writer_, provider, *tokenizer_, nullptr, nullptr, "{}", "test", &rec};
  const auto out = run_pipeline(options_, deps);
  ASSERT_FALSE(out.fatal) << out.fatal->message;
  EXPECT_EQ(out.stats.embedded, 19);
  std::int64_t requests = 0;
  for (const auto& [status, n] : rec.requests_by_status)
    requests += n;
  EXPECT_EQ(requests, out.stats.requests);
  EXPECT_EQ(rec.requests_by_status[200], out.stats.requests);  // local-hash always answers
  EXPECT_EQ(rec.rate_limited, out.stats.rate_limited);
  EXPECT_EQ(rec.retries.load(), out.stats.retries);
  EXPECT_EQ(rec.negative_latencies, 0);
  EXPECT_EQ(rec.embedded, out.stats.embedded);
  EXPECT_EQ(rec.unchanged, out.stats.unchanged);
  EXPECT_EQ(rec.tokens, out.stats.tokens);
  EXPECT_EQ(rec.failures, (std::map<std::string, std::int64_t>{{"empty_input", 1}}));
  EXPECT_EQ(out.stats.failed, 1);
  EXPECT_EQ(rec.provider_changes.load(), 0);
  EXPECT_EQ(rec.lost.load(), 0);
  EXPECT_EQ(rec.back.load(), 0);
  EXPECT_GT(rec.gauge_reports.load(), 0);
  EXPECT_EQ(rec.bad_gauges.load(), 0);
  // The one pass counted its work first (20 eligible, none embedded yet).
  EXPECT_EQ(rec.pending_counts, std::vector<std::int64_t>{20});
  // The oldest change found: u05's created_at, in PostgreSQL's text form.
  ASSERT_FALSE(rec.oldest.empty());
  ASSERT_TRUE(rec.oldest.back().has_value());
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(rec.oldest.back()->time_since_epoch()).count(),
            1'704'063'600);  // 2023-12-31T23:00:00Z
}

TEST(StoreRetryObserver, ACallThatRetriesIsLostOnceAndBackOnce) {
  Recorder rec;
  StoreRetryPolicy policy;
  policy.backoff = {std::chrono::milliseconds(1), std::chrono::milliseconds(2)};
  int calls = 0;
  auto r = with_store_retries(
      [&]() -> util::Status {
        if (++calls < 3) return util::fail(util::ErrorCode::transient, "connection lost");
        return {};
      },
      "a test call", observed_by(rec, policy));
  EXPECT_TRUE(r);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(rec.lost.load(), 1);
  EXPECT_EQ(rec.back.load(), 1);
  // A call that succeeds at once is never lost; one that gives up comes back too.
  EXPECT_TRUE(with_store_retries([] { return util::Status{}; }, "fine", observed_by(rec, policy)));
  EXPECT_EQ(rec.lost.load(), 1);
  policy.budget = std::chrono::milliseconds(0);
  EXPECT_FALSE(with_store_retries([] { return util::Status(util::fail(util::ErrorCode::permanent, "no")); },
                                  "refused", observed_by(rec, policy)));
  EXPECT_EQ(rec.lost.load(), 1);
  EXPECT_EQ(rec.back.load(), 1);
}

}  // namespace
}  // namespace lens::pipeline
