// Fencing of late writes (store.h, "Fencing"): a worker that was paused or cut off
// writes results it read long ago. On every backend, a row never replaces a newer one
// and the same write twice is harmless; with PostgreSQL claims, a write after another
// worker took the claim over is refused unless it is provably harmless.
#include <gtest/gtest.h>

#include <fmt/core.h>

#include "store_backends.h"
#include "util/sha256.h"

namespace lens::store::test {
namespace {

constexpr const char* k_provider = "fence-provider";
constexpr const char* k_model = "m4";

class FenceTest : public BackendTest {
 protected:
  // `n` user messages 1000.. in one conversation, created at(10 + i), no answers.
  void corpus(int n) {
    backend_->exec(fmt::format(
        "INSERT INTO conversations (id, user_id, title, created_at) VALUES ('{}', '{}', 't', '{}')", uid(1),
        uid(2), at(0)));
    for (int i = 0; i < n; ++i) {
      backend_->exec(fmt::format(
          "INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES ('{}', '{}', "
          "'user', 'question {}', '{}')",
          uid(1000 + i), uid(1), i, at(10 + i)));
    }
  }

  static core::EmbeddingRow row(int id, const std::string& version, const std::string& text, float mark) {
    core::EmbeddingRow r;
    r.user_message_id = uid(id);
    r.content_sha256 = util::sha256(text);
    r.token_count = 2;
    r.source_version = version;
    r.embedding = {mark, 0.5f, -0.25f, 1.0f};
    return r;
  }

  static WriteBatch batch() {
    WriteBatch b;
    b.provider = k_provider;
    b.model = k_model;
    return b;
  }

  static WriteBatch rows(std::vector<core::EmbeddingRow> rs) {
    auto b = batch();
    b.rows = std::move(rs);
    return b;
  }

  WriteReport write(Store& store, const WriteBatch& b) {
    auto r = store.write_batch(b);
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    return r ? *r : WriteReport{};
  }

  // The stored mark (first vector component) of message `id`, or -1 without a row.
  float mark(int id) {
    auto v = backend_->read_embedding(k_provider, k_model, uid(id));
    return v.empty() ? -1.0f : v[0];
  }

  std::string stored_version(int id) {
    return backend_->scalar(fmt::format(
        "SELECT source_version FROM message_embeddings WHERE provider = '{}' AND model = '{}' AND "
        "user_message_id = '{}'",
        k_provider, k_model, uid(id)));
  }

  std::int64_t count(const std::string& sql) { return std::stoll(backend_->scalar(sql)); }
  std::int64_t failures() {
    return count(fmt::format("SELECT count(*) FROM embedding_failures WHERE provider = '{}'", k_provider));
  }
};

class Fencing : public FenceTest {};
class FencingClaims : public FenceTest {};

TEST_P(Fencing, AnOlderVersionWrittenAfterANewerOneLeavesTheNewerRow) {
  corpus(2);
  EXPECT_EQ(write(*store_, rows({row(1000, at(20), "edited", 2.0f)})).fenced(), 0);
  // The late write: read at version 10, before the edit.
  auto late = write(*store_, rows({row(1000, at(10), "original", 1.0f), row(1001, at(11), "q1", 7.0f)}));
  EXPECT_EQ(late.fenced_rows, 1);
  EXPECT_EQ(late.fenced(), 1);
  EXPECT_EQ(mark(1000), 2.0f);
  EXPECT_EQ(mark(1001), 7.0f);  // the rest of the batch is written
  EXPECT_NE(stored_version(1000).find("00:00:20"), std::string::npos) << stored_version(1000);
  // A newer version still replaces it.
  EXPECT_EQ(write(*store_, rows({row(1000, at(30), "edited again", 3.0f)})).fenced(), 0);
  EXPECT_EQ(mark(1000), 3.0f);
}

TEST_P(Fencing, TheSameWriteTwiceIsHarmless) {
  corpus(1);
  const auto b = rows({row(1000, at(10), "q", 4.0f)});
  EXPECT_EQ(write(*store_, b).fenced(), 0);
  EXPECT_EQ(write(*store_, b).fenced(), 0);  // a redo after an unknown commit outcome
  EXPECT_EQ(mark(1000), 4.0f);
  EXPECT_EQ(count("SELECT count(*) FROM message_embeddings"), 1);
}

TEST_P(Fencing, ATouchAppliesOnlyWhileTheRowHoldsItsInput) {
  corpus(1);
  write(*store_, rows({row(1000, at(10), "original", 1.0f)}));
  write(*store_, rows({row(1000, at(20), "edited", 2.0f)}));
  // Read at 15 with the original input: the row was rewritten since.
  auto b = batch();
  b.touches.push_back(core::RowTouch{uid(1000), std::nullopt, at(15), util::sha256("original")});
  EXPECT_EQ(write(*store_, b).fenced_touches, 1);
  // Newer, but for an input the row no longer holds.
  b.touches[0].source_version = at(25);
  EXPECT_EQ(write(*store_, b).fenced_touches, 1);
  EXPECT_NE(stored_version(1000).find("00:00:20"), std::string::npos);
  // The input the row holds, newer: applied.
  b.touches[0].content_sha256 = util::sha256("edited");
  EXPECT_EQ(write(*store_, b).fenced(), 0);
  EXPECT_NE(stored_version(1000).find("00:00:25"), std::string::npos);
  EXPECT_EQ(mark(1000), 2.0f);
}

TEST_P(Fencing, LateFailuresAreNotRecordedAndRowsDoNotGoUnderANewerFailure) {
  corpus(2);
  write(*store_, rows({row(1000, at(20), "edited", 2.0f)}));
  auto f = batch();
  f.failures.push_back(core::Failure{uid(1000), core::FailureReason::context_length, "late", at(10)});
  EXPECT_EQ(write(*store_, f).fenced_failures, 1);
  EXPECT_EQ(failures(), 0);
  // Of the same version (a --force pass that failed): recorded.
  f.failures[0].source_version = at(20);
  EXPECT_EQ(write(*store_, f).fenced(), 0);
  EXPECT_EQ(failures(), 1);
  // A failure of version 30 recorded; a row read at 25 comes late.
  auto g = batch();
  g.failures.push_back(core::Failure{uid(1001), core::FailureReason::context_length, "new", at(30)});
  write(*store_, g);
  EXPECT_EQ(write(*store_, rows({row(1001, at(25), "older", 5.0f)})).fenced_rows, 1);
  EXPECT_EQ(mark(1001), -1.0f);
  // An older failure does not replace the newer one either.
  g.failures[0].source_version = at(12);
  EXPECT_EQ(write(*store_, g).fenced_failures, 1);
}

TEST_P(Fencing, TheRunsProgressCountsOnlyWhatWasWritten) {
  corpus(2);
  write(*store_, rows({row(1000, at(20), "edited", 2.0f)}));
  RunRecord rec{k_provider, k_model, "{}", "w"};
  auto run = store_->begin_run(rec);
  ASSERT_TRUE(run) << run.error().message;
  auto b = rows({row(1000, at(10), "original", 1.0f), row(1001, at(11), "q1", 7.0f)});
  b.run_id = *run;
  b.progress.embedded = 2;
  EXPECT_EQ(write(*store_, b).fenced_rows, 1);
  EXPECT_EQ(count(fmt::format("SELECT embedded FROM embedding_runs WHERE id = {}", *run)), 1);
}

// PostgreSQL claims: worker A claims, pauses past its lease; B takes the claims over.
TEST_P(FencingClaims, AWriteAfterTheClaimWasTakenOverIsRefusedUnlessHarmless) {
  corpus(3);
  OpenOptions a_opts;
  a_opts.use_claims = true;
  a_opts.worker_id = "worker-a";
  a_opts.lease = std::chrono::seconds(60);  // no renewal during the test (every 20 s)
  OpenOptions b_opts = a_opts;
  b_opts.worker_id = "worker-b";
  auto a = open(a_opts);
  auto b = open(b_opts);
  WorkScope scope;
  scope.provider = k_provider;
  scope.model = k_model;
  PendingCursor ca;
  auto pa = a->next_pending(scope, ca, 10);
  ASSERT_TRUE(pa) << pa.error().message;
  ASSERT_EQ(pa->items.size(), 3u);
  const std::string v0 = pa->items[0].source_version, v1 = pa->items[1].source_version,
                    v2 = pa->items[2].source_version;
  // A is paused: its lease runs out, B takes its claims over.
  backend_->exec("UPDATE embedding_claims SET expires_at = now() - interval '1 second'");
  PendingCursor cb;
  auto pb = b->next_pending(scope, cb, 10);
  ASSERT_TRUE(pb) << pb.error().message;
  ASSERT_EQ(pb->items.size(), 3u);
  EXPECT_EQ(count("SELECT count(*) FROM embedding_claims WHERE worker = 'worker-b'"), 3);

  // A wakes up and writes what it had: refused, nothing recorded as failed, B's claims kept.
  auto late = a->write_batch([&] {
    auto w = rows({row(1000, v0, "question 0", 1.0f), row(1001, v1, "question 1", 1.0f)});
    w.failures.push_back(core::Failure{uid(1002), core::FailureReason::provider_rejected, "late", v2});
    return w;
  }());
  ASSERT_TRUE(late) << late.error().message;
  EXPECT_EQ(late->fenced_rows, 2);
  EXPECT_EQ(late->fenced_failures, 1);
  EXPECT_EQ(count("SELECT count(*) FROM message_embeddings"), 0);
  EXPECT_EQ(failures(), 0);
  EXPECT_EQ(count("SELECT count(*) FROM embedding_claims WHERE worker = 'worker-b'"), 3);

  // B writes 1000 and, in a later pass, claims it again. A's late write of the same input
  // is harmless (the row holds that hash) and goes through; a different input for 1000 or
  // any input for 1001 (B holds it, no row yet) does not.
  write(*b, rows({row(1000, v0, "question 0", 2.0f)}));
  backend_->exec(
      fmt::format("INSERT INTO embedding_claims (provider, model, user_message_id, worker, expires_at) "
                  "VALUES ('{}', '{}', '{}', 'worker-b', now() + interval '1 minute')",
                  k_provider, k_model, uid(1000)));
  auto again = write(*a, rows({row(1000, v0, "question 0", 1.5f), row(1001, v1, "question 1", 1.5f)}));
  EXPECT_EQ(again.fenced_rows, 1);
  EXPECT_EQ(mark(1000), 1.5f);
  EXPECT_EQ(mark(1001), -1.0f);
  EXPECT_EQ(write(*a, rows({row(1000, v0, "edited under a", 1.7f)})).fenced_rows, 1);
  EXPECT_EQ(mark(1000), 1.5f);
  backend_->exec("DELETE FROM embedding_claims WHERE worker = 'worker-b' AND user_message_id = '" +
                 uid(1000) + "'");
  // B's own writes go through.
  auto own = write(*b, rows({row(1001, v1, "question 1", 2.0f), row(1002, v2, "question 2", 2.0f)}));
  EXPECT_EQ(own.fenced(), 0);
  EXPECT_EQ(mark(1001), 2.0f);
  EXPECT_EQ(count("SELECT count(*) FROM embedding_claims"), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, Fencing, ::testing::ValuesIn(available_backends(true, true, true)),
                         [](const auto& info) { return info.param; });
INSTANTIATE_TEST_SUITE_P(Backends, FencingClaims, ::testing::ValuesIn(available_backends(false, true, false)),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace lens::store::test
