// PostgreSQL claim liveness (issue 11): a worker's claims carry the key of the advisory lock
// its heartbeat session holds; a claim whose key no session holds (its worker was killed)
// is taken over at once, long before its lease ends; a claim whose key is held waits.
// The other worker is played by rows this test writes and a lock its own session holds.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fmt/core.h>

#include "store_backends.h"

namespace lens::store::test {
namespace {

constexpr const char* k_provider = "live-provider";
constexpr const char* k_model = "m4";

class ClaimsLiveness : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    backend_ = make_backend(GetParam());
    ASSERT_TRUE(backend_);
    auto s = backend_->open({});
    ASSERT_TRUE(s) << s.error().message;
    ASSERT_TRUE((*s)->migrate());
    backend_->exec(
        fmt::format("INSERT INTO conversations (id, user_id, created_at) VALUES ('{}', '{}', "
                    "'2024-01-01T00:00:00Z')",
                    uid(1), uid(2)));
    backend_->exec(fmt::format(
        "INSERT INTO messages (id, conversation_id, role, content, created_at) "
        "SELECT ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, '{}', 'user', 'q' || g, "
        "'2024-01-01T00:00:00Z'::timestamptz + g * interval '1 millisecond' FROM generate_series(1001, 1010) "
        "g",
        uid(1)));
  }

  // Claims of another worker on 1001..1005, with an hour of lease left, made a second ago.
  void claims_of_other_worker(std::int64_t key) {
    backend_->exec(fmt::format(
        "INSERT INTO embedding_claims (provider, model, user_message_id, worker, claimed_at, expires_at, "
        "worker_key) SELECT '{}', '{}', ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, "
        "'other-host:1', now() - interval '1 second', now() + interval '1 hour', {} "
        "FROM generate_series(1001, 1005) g",
        k_provider, k_model, key));
  }

  std::unique_ptr<Store> worker() {
    OpenOptions o;
    o.use_claims = true;
    o.worker_id = "live-host:2";
    auto s = backend_->open(o);
    EXPECT_TRUE(s) << (s ? "" : s.error().message);
    return s ? std::move(*s) : nullptr;
  }
  WorkScope scope() const {
    WorkScope s;
    s.provider = k_provider;
    s.model = k_model;
    return s;
  }
  std::int64_t count(const std::string& sql) { return std::stoll(backend_->scalar(sql)); }

  std::unique_ptr<Backend> backend_;
};

TEST_P(ClaimsLiveness, ClaimsOfAWorkerWhoseSessionIsGoneAreTakenOverAtOnce) {
  claims_of_other_worker(0x5EED000000LL + getpid());  // nobody holds this lock
  auto w = worker();
  ASSERT_TRUE(w);
  PendingCursor cursor;
  auto page = w->next_pending(scope(), cursor, 100);
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_EQ(page->items.size(), 10u);
  EXPECT_EQ(count("SELECT count(*) FROM embedding_claims WHERE worker = 'live-host:2'"), 10);
  // Our claims carry the key our heartbeat session holds.
  EXPECT_EQ(
      count("SELECT count(*) FROM embedding_claims c WHERE c.worker = 'live-host:2' AND c.worker_key IN "
            "(SELECT (l.classid::bigint << 32) | l.objid::bigint FROM pg_locks l WHERE l.locktype = "
            "'advisory' AND l.objsubid = 1 AND l.granted)"),
      10);
}

TEST_P(ClaimsLiveness, ClaimsOfALiveSessionWaitAndAreTakenWhenItEnds) {
  const std::int64_t key = 0x5EED100000LL + getpid();
  backend_->exec(fmt::format("SELECT pg_advisory_lock({})", key));  // the admin session plays the worker
  claims_of_other_worker(key);
  auto w = worker();
  ASSERT_TRUE(w);
  PendingCursor cursor;
  auto page = w->next_pending(scope(), cursor, 100);
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_EQ(page->items.size(), 5u);  // 1006..1010
  for (const auto& x : page->items)
    EXPECT_GE(x.user_message_id, uid(1006));
  EXPECT_FALSE(page->exhausted);
  // End of the keyset: the live worker's claims are waited for, not taken.
  auto wait = w->next_pending(scope(), cursor, 100);
  ASSERT_TRUE(wait) << wait.error().message;
  EXPECT_TRUE(wait->items.empty());
  EXPECT_FALSE(wait->exhausted);
  EXPECT_EQ(count("SELECT count(*) FROM embedding_claims WHERE worker = 'other-host:1'"), 5);
  // Its session lets go of the lock (it died): taken over at once, an hour before the lease.
  backend_->exec(fmt::format("SELECT pg_advisory_unlock({})", key));
  auto taken = w->next_pending(scope(), cursor, 100);
  ASSERT_TRUE(taken) << taken.error().message;
  EXPECT_EQ(taken->items.size(), 5u);
  EXPECT_EQ(count("SELECT count(*) FROM embedding_claims WHERE worker = 'other-host:1'"), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, ClaimsLiveness,
                         ::testing::ValuesIn(available_backends(false, true, false)),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace lens::store::test
