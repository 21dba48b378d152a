// Schema v2 on every backend (issue 11): transient failures come back once due, permanent
// ones stay; `failures --retry` works on exactly the recorded failures; a run's cause is
// stored; pairs() lists every (provider, model) with its counts and dimensions.
#include <gtest/gtest.h>

#include <fmt/core.h>
#include <algorithm>
#include <cmath>

#include "core/vocabulary.h"
#include "store_backends.h"
#include "util/redact.h"
#include "util/sha256.h"

namespace lens::store::test {
namespace {

constexpr const char* k_provider = "fc-provider";
constexpr const char* k_model = "m4";

class FailureClasses : public ::testing::TestWithParam<std::string> {
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
    for (int i = 1; i <= 6; ++i) {
      backend_->exec(
          fmt::format("INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES "
                      "('{}', '{}', 'user', 'question {}', '{}')",
                      uid(100 + i), uid(1), i, at(2 * i)));
    }
  }

  WorkScope scope(bool only_failures = false, const std::string& provider = k_provider) const {
    WorkScope s;
    s.provider = provider;
    s.model = k_model;
    s.only_failures = only_failures;
    return s;
  }

  std::vector<core::Exchange> pending(const WorkScope& s, std::size_t page = 100) {
    PendingCursor cursor;
    std::vector<core::Exchange> out;
    for (int guard = 0; guard < 100; ++guard) {
      auto p = store_->next_pending(s, cursor, page);
      EXPECT_TRUE(p) << (p ? "" : p.error().message);
      if (!p) break;
      for (auto& x : p->items)
        out.push_back(std::move(x));
      if (p->exhausted) break;
    }
    return out;
  }
  static std::vector<std::string> ids(const std::vector<core::Exchange>& xs) {
    std::vector<std::string> out;
    for (const auto& x : xs)
      out.push_back(x.user_message_id);
    return out;
  }
  const core::Exchange& find(const std::vector<core::Exchange>& xs, int n) {
    auto it = std::find_if(xs.begin(), xs.end(), [&](const auto& x) { return x.user_message_id == uid(n); });
    EXPECT_NE(it, xs.end()) << uid(n);
    return *it;
  }

  void fail(const core::Exchange& x, core::FailureReason reason, const std::string& provider = k_provider) {
    WriteBatch b;
    b.provider = provider;
    b.model = k_model;
    b.failures.push_back(core::Failure{x.user_message_id, reason, "detail", x.source_version});
    auto w = store_->write_batch(b);
    ASSERT_TRUE(w) << w.error().message;
  }
  void embed(const core::Exchange& x, std::vector<float> v, const std::string& provider = k_provider) {
    WriteBatch b;
    b.provider = provider;
    b.model = k_model;
    core::EmbeddingRow row;
    row.user_message_id = x.user_message_id;
    row.content_sha256 = util::sha256(x.user_content);
    row.token_count = 2;
    row.source_version = x.source_version;
    row.embedding = std::move(v);
    b.rows.push_back(std::move(row));
    auto w = store_->write_batch(b);
    ASSERT_TRUE(w) << w.error().message;
  }

  // Seconds from last_failed_at to next_attempt_at of one failure, as the database says.
  double delay_of(int n) {
    const std::string sql =
        backend_->is_postgres()
            ? fmt::format(
                  "SELECT extract(epoch FROM next_attempt_at - last_failed_at) FROM embedding_failures "
                  "WHERE user_message_id = '{}'",
                  uid(n))
            : fmt::format(
                  "SELECT (julianday(next_attempt_at) - julianday(last_failed_at)) * 86400.0 FROM "
                  "embedding_failures WHERE user_message_id = '{}'",
                  uid(n));
    const std::string text = backend_->scalar(sql);
    return text.empty() ? -1 : std::stod(text);
  }
  void make_due(int n) {
    backend_->exec(
        fmt::format("UPDATE embedding_failures SET next_attempt_at = {} WHERE user_message_id = '{}'",
                    backend_->is_postgres() ? "now() - interval '1 second'"
                                            : "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 seconds')",
                    uid(n)));
  }

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Store> store_;
};

TEST(TransientRetryDelay, DoublesFromAMinuteUpToAnHour) {
  using std::chrono::seconds;
  EXPECT_EQ(core::transient_retry_delay(0), seconds(60));
  EXPECT_EQ(core::transient_retry_delay(1), seconds(60));
  EXPECT_EQ(core::transient_retry_delay(2), seconds(120));
  EXPECT_EQ(core::transient_retry_delay(6), seconds(1920));
  EXPECT_EQ(core::transient_retry_delay(7), seconds(3600));
  EXPECT_EQ(core::transient_retry_delay(1000), seconds(3600));
}

TEST_P(FailureClasses, TransientFailuresComeBackWhenDuePermanentOnesStay) {
  const auto all = pending(scope());
  ASSERT_EQ(all.size(), 6u);
  fail(find(all, 101), core::FailureReason::context_length);     // permanent
  fail(find(all, 102), core::FailureReason::retries_exhausted);  // transient
  fail(find(all, 103), core::FailureReason::invalid_response);   // transient
  fail(find(all, 103), core::FailureReason::invalid_response);   // its second attempt

  // Nothing failed is offered while no transient failure is due.
  EXPECT_EQ(ids(pending(scope())), (std::vector<std::string>{uid(104), uid(105), uid(106)}));
  auto n = store_->count_pending(scope());
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 3);

  // The backoff kept in the table: transient_retry_delay(attempts) after the last failure.
  EXPECT_NEAR(delay_of(102), 60.0, 0.01);
  EXPECT_NEAR(delay_of(103), 120.0, 0.01);
  auto list = store_->failures(k_provider, k_model);
  ASSERT_TRUE(list) << list.error().message;
  ASSERT_EQ(list->size(), 3u);
  for (const auto& f : *list) {
    const bool transient = core::failure_class(f.reason) == core::FailureClass::transient;
    EXPECT_EQ(f.next_attempt_at.empty(), !transient) << f.user_message_id << " " << f.next_attempt_at;
    if (transient) {
      EXPECT_GT(f.next_attempt_at, f.last_failed_at);
    }
  }

  auto status = store_->status(1);
  ASSERT_TRUE(status) << status.error().message;
  ASSERT_EQ(status->models.size(), 1u);
  EXPECT_EQ(status->models[0].failed_permanent, 1);
  EXPECT_EQ(status->models[0].failed_transient, 2);
  EXPECT_EQ(status->models[0].transient_due, 0);
  EXPECT_EQ(status->models[0].failed, 3);
  EXPECT_EQ(status->models[0].pending, 3);

  // Once due, the next run retries it by itself; the permanent one stays.
  make_due(103);
  const auto again = pending(scope());
  EXPECT_EQ(ids(again), (std::vector<std::string>{uid(103), uid(104), uid(105), uid(106)}));
  n = store_->count_pending(scope());
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 4);
  status = store_->status(1);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->models[0].transient_due, 1);

  // A third failure pushes it back, twice as far; a success clears it.
  fail(find(again, 103), core::FailureReason::retries_exhausted);
  EXPECT_NEAR(delay_of(103), 240.0, 0.01);
  EXPECT_EQ(ids(pending(scope())), (std::vector<std::string>{uid(104), uid(105), uid(106)}));
  make_due(102);
  embed(find(pending(scope()), 102), {1, 0, 0, 0});
  list = store_->failures(k_provider, k_model);
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), 2u);
}

TEST_P(FailureClasses, OnlyFailuresIsExactlyTheRecordedFailures) {
  const auto all = pending(scope());
  ASSERT_EQ(all.size(), 6u);
  fail(find(all, 102), core::FailureReason::provider_rejected);  // permanent
  fail(find(all, 105), core::FailureReason::retries_exhausted);  // transient, not due
  // An exchange with an up-to-date row whose re-embedding (--force) failed: a failure too.
  embed(find(all, 104), {1, 0, 0, 0});
  fail(find(all, 104), core::FailureReason::invalid_response);
  // The failure of another provider is not this pair's.
  fail(find(all, 106), core::FailureReason::context_length, "other-provider");

  for (std::size_t page : {1u, 2u, 100u}) {
    EXPECT_EQ(ids(pending(scope(true), page)), (std::vector<std::string>{uid(102), uid(104), uid(105)}))
        << "page size " << page;
  }
  EXPECT_EQ(ids(pending(scope(true, "other-provider"))), (std::vector<std::string>{uid(106)}));
  auto n = store_->count_pending(scope(true));
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 3);
  // The rest of the corpus is still pending for a normal run, untouched by the retry.
  EXPECT_EQ(ids(pending(scope())), (std::vector<std::string>{uid(101), uid(103), uid(106)}));
}

TEST_P(FailureClasses, FinishRunStoresItsCauseRedacted) {
  util::register_secret("sk-cause-secret-9d1");
  auto run = store_->begin_run({k_provider, k_model, "{}", "host:1"});
  ASSERT_TRUE(run) << run.error().message;
  core::RunStats stats;
  stats.requests = 3;
  const std::string cause =
      "provider unavailable: connection refused (check --base-url / SUPERMIND_BASE_URL) sk-cause-secret-9d1";
  ASSERT_TRUE(store_->finish_run(*run, core::RunStatus::failed, stats, cause));
  auto clean = store_->begin_run({k_provider, k_model, "{}", "host:1"});
  ASSERT_TRUE(clean);
  ASSERT_TRUE(store_->finish_run(*clean, core::RunStatus::completed, stats, ""));

  auto status = store_->status(2);
  ASSERT_TRUE(status) << status.error().message;
  ASSERT_EQ(status->recent_runs.size(), 2u);
  EXPECT_EQ(status->recent_runs[0].id, *clean);
  EXPECT_EQ(status->recent_runs[0].error, "");
  EXPECT_EQ(backend_->scalar(
                fmt::format("SELECT count(*) FROM embedding_runs WHERE id = {} AND error IS NULL", *clean)),
            "1");
  const auto& failed = status->recent_runs[1];
  EXPECT_EQ(failed.status, core::RunStatus::failed);
  EXPECT_EQ(failed.stats.requests, 3);
  EXPECT_NE(failed.error.find("provider unavailable: connection refused (check --base-url"),
            std::string::npos)
      << failed.error;
  EXPECT_EQ(failed.error.find("sk-cause-secret-9d1"), std::string::npos) << failed.error;
}

TEST_P(FailureClasses, PairsListsEveryPairWithCountsAndDimensions) {
  auto empty = store_->pairs();
  ASSERT_TRUE(empty) << empty.error().message;
  EXPECT_TRUE(empty->empty());

  const auto all = pending(scope());
  ASSERT_EQ(all.size(), 6u);
  // (fc-provider, m4): three rows of two sizes (the mix the dimension check must see), a
  // permanent and a due transient failure.
  embed(find(all, 101), {1, 0, 0, 0});
  embed(find(all, 102), {0, 1, 0, 0});
  embed(find(all, 103), {1, 2, 3});
  fail(find(all, 104), core::FailureReason::empty_input);
  fail(find(all, 105), core::FailureReason::retries_exhausted);
  make_due(105);
  // (b-provider, m4): rows only; (a-provider, m4): a failure only.
  embed(find(all, 106), {1, 1, 1, 1, 1, 1, 1, 1}, "b-provider");
  fail(find(all, 101), core::FailureReason::invalid_response, "a-provider");

  auto pairs = store_->pairs();
  ASSERT_TRUE(pairs) << pairs.error().message;
  ASSERT_EQ(pairs->size(), 3u);
  const auto& a = (*pairs)[0];
  EXPECT_EQ(a.provider, "a-provider");
  EXPECT_EQ(a.rows, 0);
  EXPECT_TRUE(a.dimensions.empty());
  EXPECT_EQ(a.failed_transient, 1);
  EXPECT_EQ(a.transient_due, 0);
  const auto& b = (*pairs)[1];
  EXPECT_EQ(b.provider, "b-provider");
  EXPECT_EQ(b.model, k_model);
  EXPECT_EQ(b.rows, 1);
  EXPECT_EQ(b.dimensions, (std::vector<std::int64_t>{8}));
  EXPECT_EQ(b.failed_permanent + b.failed_transient, 0);
  const auto& f = (*pairs)[2];
  EXPECT_EQ(f.provider, k_provider);
  EXPECT_EQ(f.rows, 3);
  EXPECT_EQ(f.dimensions, (std::vector<std::int64_t>{3, 4}));
  EXPECT_EQ(f.failed_permanent, 1);
  EXPECT_EQ(f.failed_transient, 1);
  EXPECT_EQ(f.transient_due, 1);
}

INSTANTIATE_TEST_SUITE_P(Backends, FailureClasses, ::testing::ValuesIn(available_backends(true, true, false)),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace lens::store::test
