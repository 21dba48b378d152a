// What both stores do the same behind the interface (store.h): a row the database
// refuses is isolated, recorded as a store_rejected failure, and the rest of its batch
// commits (store/write_isolation.h); the run's arguments are stored redacted. The
// refusal is real: a trigger (SQLite) or a CHECK constraint (PostgreSQL) the test adds.
#include <gtest/gtest.h>

#include <fmt/core.h>
#include <algorithm>

#include "store_backends.h"
#include "util/redact.h"
#include "util/sha256.h"

namespace lens::store::test {
namespace {

constexpr const char* k_provider = "iso-provider";
constexpr const char* k_model = "m4";

class StoreParity : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    backend_ = make_backend(GetParam());
    ASSERT_TRUE(backend_);
    auto s = backend_->open({});
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
    auto m = store_->migrate();
    ASSERT_TRUE(m) << m.error().message;
    backend_->exec(fmt::format(
        "INSERT INTO conversations (id, user_id, title, created_at) VALUES ('{}', '{}', 't', '{}')", uid(1),
        uid(2), at(0)));
    for (int i = 1; i <= 5; ++i) {
      backend_->exec(
          fmt::format("INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES "
                      "('{}', '{}', 'user', 'question {}', '{}')",
                      uid(100 + i), uid(1), i, at(2 * i)));
    }
  }

  // From now on the database refuses a row of message_embeddings for `id`.
  void refuse_embedding_of(const std::string& id) {
    if (backend_->is_postgres()) {
      backend_->exec(fmt::format(
          "ALTER TABLE message_embeddings ADD CONSTRAINT lens_test_refuse CHECK (user_message_id <> '{}')",
          id));
    } else {
      backend_->exec(
          fmt::format("CREATE TRIGGER lens_test_refuse BEFORE INSERT ON message_embeddings "
                      "WHEN NEW.user_message_id = '{}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
                      id));
    }
  }

  // ... and every store_rejected failure too.
  void refuse_store_rejected_failures() {
    if (backend_->is_postgres()) {
      backend_->exec(
          "ALTER TABLE embedding_failures ADD CONSTRAINT lens_test_refuse_failure CHECK (reason <> "
          "'store_rejected')");
    } else {
      backend_->exec(
          "CREATE TRIGGER lens_test_refuse_failure BEFORE INSERT ON embedding_failures "
          "WHEN NEW.reason = 'store_rejected' BEGIN SELECT RAISE(ABORT, 'failure refused by the test'); END");
    }
  }

  std::vector<core::Exchange> pending(bool retry = false) {
    WorkScope scope{k_provider, k_model, false, retry};
    PendingCursor cursor;
    std::vector<core::Exchange> out;
    for (int guard = 0; guard < 100; ++guard) {
      auto page = store_->next_pending(scope, cursor, 100);
      EXPECT_TRUE(page) << (page ? "" : page.error().message);
      if (!page) break;
      for (auto& x : page->items)
        out.push_back(std::move(x));
      if (page->exhausted) break;
    }
    return out;
  }

  // Rows for the exchanges 1-4, a provider failure for 5, and the run's progress.
  WriteBatch batch(const std::vector<core::Exchange>& xs, std::int64_t run_id) {
    WriteBatch b;
    b.run_id = run_id;
    b.provider = k_provider;
    b.model = k_model;
    for (const auto& x : xs) {
      if (x.user_message_id == uid(105)) {
        b.failures.push_back(core::Failure{x.user_message_id, core::FailureReason::provider_rejected, "400",
                                           x.source_version});
        continue;
      }
      core::EmbeddingRow row;
      row.user_message_id = x.user_message_id;
      row.content_sha256 = util::sha256(x.user_content);
      row.token_count = 2;
      row.source_version = x.source_version;
      row.embedding = {1.0f, 0.5f, 0.25f, 0.125f};
      b.rows.push_back(std::move(row));
    }
    b.progress.embedded = 4;
    b.progress.failed = 1;
    b.progress.requests = 1;
    return b;
  }

  std::int64_t count(const std::string& sql) { return std::stoll(backend_->scalar(sql)); }

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreParity, ARefusedRowIsRecordedAsStoreRejectedAndTheRestOfTheBatchCommits) {
  refuse_embedding_of(uid(102));
  const auto xs = pending();
  ASSERT_EQ(xs.size(), 5u);
  auto run = store_->begin_run({k_provider, k_model, "{}", "host:1"});
  ASSERT_TRUE(run) << run.error().message;

  auto w = store_->write_batch(batch(xs, *run));
  ASSERT_TRUE(w) << w.error().message;

  EXPECT_EQ(count("SELECT count(*) FROM message_embeddings"), 3);
  EXPECT_EQ(
      count(fmt::format("SELECT count(*) FROM message_embeddings WHERE user_message_id = '{}'", uid(102))),
      0);
  auto failures = store_->failures(k_provider, k_model);
  ASSERT_TRUE(failures) << failures.error().message;
  ASSERT_EQ(failures->size(), 2u);
  std::sort(failures->begin(), failures->end(),
            [](const auto& a, const auto& b) { return a.user_message_id < b.user_message_id; });
  EXPECT_EQ((*failures)[0].user_message_id, uid(102));
  EXPECT_EQ((*failures)[0].reason, core::FailureReason::store_rejected);
  EXPECT_NE((*failures)[0].detail.find(backend_->is_postgres() ? "lens_test_refuse" : "refused by the test"),
            std::string::npos)
      << (*failures)[0].detail;
  EXPECT_EQ((*failures)[0].attempts, 1);
  EXPECT_EQ((*failures)[1].user_message_id, uid(105));
  EXPECT_EQ((*failures)[1].reason, core::FailureReason::provider_rejected);

  // The batch's progress committed with the rest.
  auto status = store_->status(1);
  ASSERT_TRUE(status) << status.error().message;
  ASSERT_EQ(status->recent_runs.size(), 1u);
  EXPECT_EQ(status->recent_runs[0].stats.embedded, 4);
  EXPECT_EQ(status->recent_runs[0].stats.failed, 1);

  // The refused row is not handed out again, unless failures are retried.
  EXPECT_TRUE(pending().empty());
  const auto retried = pending(true);
  ASSERT_EQ(retried.size(), 2u);
  EXPECT_EQ(retried[0].user_message_id, uid(102));
  EXPECT_EQ(retried[1].user_message_id, uid(105));
}

TEST_P(StoreParity, ARefusedRowThatCannotBeRecordedEitherStopsTheBatch) {
  refuse_embedding_of(uid(102));
  refuse_store_rejected_failures();
  const auto xs = pending();
  ASSERT_EQ(xs.size(), 5u);

  auto w = store_->write_batch(batch(xs, 0));
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, util::ErrorCode::permanent) << w.error().message;
  // Rows isolated before the culprit are committed (each alone); nothing after it, and
  // nothing is lost: what is not written is still pending.
  EXPECT_EQ(count("SELECT count(*) FROM message_embeddings"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM embedding_failures"), 0);
  EXPECT_EQ(pending().size(), 4u);
}

TEST_P(StoreParity, TheRunsArgumentsAreStoredWithSecretsRedacted) {
  util::register_secret("sk-parity-test-4f1e9c");
  auto run = store_->begin_run(
      {k_provider, k_model,
       R"({"database":"postgresql://lens:hunter2pass@db.example/lens","api_key":"sk-parity-test-4f1e9c"})",
       "host:1"});
  ASSERT_TRUE(run) << run.error().message;
  const std::string stored =
      backend_->scalar(fmt::format("SELECT arguments FROM embedding_runs WHERE id = {}", *run));
  EXPECT_EQ(stored.find("hunter2pass"), std::string::npos) << stored;
  EXPECT_EQ(stored.find("sk-parity-test-4f1e9c"), std::string::npos) << stored;
  EXPECT_NE(stored.find("db.example"), std::string::npos) << stored;
  EXPECT_NE(stored.find("***"), std::string::npos) << stored;
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreParity, ::testing::ValuesIn(available_backends(true, true, true)),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace lens::store::test
