// PostgreSQL-only behaviour of the store: claims and leases between workers, --force
// horizon, LISTEN/NOTIFY, reconnect after a lost connection, redaction, schema versions;
// and the pgvector path on PGlite (vector/halfvec columns, HNSW, poison-row isolation).
#include <gtest/gtest.h>

#include <fmt/core.h>
#include <future>
#include <set>
#include <thread>

#include "store/postgres/migrations.h"
#include "store_backends.h"
#include "util/sha256.h"

namespace lens::store::test {
namespace {

constexpr const char* k_provider = "pg-provider";
constexpr const char* k_model = "m4";

class PgTest : public BackendTest {
 protected:
  void corpus(int n, int first_id = 1000) {
    backend_->exec(
        fmt::format("INSERT INTO conversations (id, user_id, created_at) VALUES ('{}', '{}', '{}') "
                    "ON CONFLICT DO NOTHING",
                    uid(1), uid(2), at(0)));
    backend_->exec(fmt::format(
        "INSERT INTO messages (id, conversation_id, role, content, created_at) "
        "SELECT ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, '{}', 'user', 'q' || g, "
        "'2024-01-01T00:00:00Z'::timestamptz + g * interval '1 millisecond' FROM generate_series({}, {}) g",
        uid(1), first_id, first_id + n - 1));
  }
  WorkScope scope(bool force = false) const {
    WorkScope s;
    s.provider = k_provider;
    s.model = k_model;
    s.force = force;
    return s;
  }
  static WriteBatch batch_for(const std::vector<core::Exchange>& xs, int dims = 4) {
    WriteBatch b;
    b.provider = k_provider;
    b.model = k_model;
    for (const auto& x : xs) {
      core::EmbeddingRow row;
      row.user_message_id = x.user_message_id;
      row.assistant_message_id = x.assistant_message_id;
      row.content_sha256 = util::sha256(x.user_content);
      row.token_count = 1;
      row.source_version = x.source_version;
      row.embedding.assign(static_cast<std::size_t>(dims), 0.5f);
      row.embedding[0] = static_cast<float>(x.user_content.size());
      b.rows.push_back(std::move(row));
    }
    return b;
  }
  std::int64_t count(const std::string& sql) { return std::stoll(backend_->scalar(sql)); }
};

class PostgresOnly : public PgTest {};
class Pgvector : public PgTest {};

TEST_P(PostgresOnly, ClaimsSplitWorkAndExpiredLeasesComeBack) {
  corpus(30);
  OpenOptions a_opts;
  a_opts.use_claims = true;
  a_opts.worker_id = "worker-a";
  // Long enough that no stall of this process (a loaded machine) ends a live lease; the
  // lease that must end is ended below, by the clock of the server.
  a_opts.lease = std::chrono::seconds(60);
  OpenOptions b_opts = a_opts;
  b_opts.worker_id = "worker-b";
  auto a = open(a_opts);
  auto b = open(b_opts);

  PendingCursor ca;
  auto page_a = a->next_pending(scope(), ca, 10);
  ASSERT_TRUE(page_a) << page_a.error().message;
  ASSERT_EQ(page_a->items.size(), 10u);
  EXPECT_EQ(count("SELECT count(*) FROM embedding_claims WHERE worker = 'worker-a'"), 10);

  // B walks the whole keyset: it gets the 20 that A does not hold.
  std::set<std::string> seen_b;
  PendingCursor cb;
  for (int i = 0; i < 3; ++i) {
    auto p = b->next_pending(scope(), cb, 10);
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_FALSE(p->exhausted);
    for (const auto& x : p->items)
      seen_b.insert(x.user_message_id);
  }
  EXPECT_EQ(seen_b.size(), 20u);
  for (const auto& x : page_a->items)
    EXPECT_FALSE(seen_b.contains(x.user_message_id));
  {
    auto all = b->next_pending(scope(), cb, 10);  // end of keyset: A's live claims, B waits
    ASSERT_TRUE(all);
    EXPECT_TRUE(all->items.empty());
    EXPECT_FALSE(all->exhausted);
  }
  // A dies without writing (a crash: its lease stays; closing the store would have
  // given the claims back); after its lease B takes its 10 over.
  a.reset();
  backend_->exec(
      "UPDATE embedding_claims SET expires_at = now() + interval '2 seconds' WHERE worker = 'worker-a'");
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));
  auto taken = b->next_pending(scope(), cb, 100);
  ASSERT_TRUE(taken) << taken.error().message;
  EXPECT_EQ(taken->items.size(), 10u);
  for (const auto& x : taken->items)
    EXPECT_FALSE(seen_b.contains(x.user_message_id));
  EXPECT_EQ(count("SELECT count(*) FROM embedding_claims WHERE worker = 'worker-b'"), 30);
  // Writing drops the claims; then the keyset is exhausted for everyone.
  std::vector<core::Exchange> all_items = taken->items;
  {
    auto c = open();
    PendingCursor cc;
    for (;;) {
      auto p = c->next_pending(scope(), cc, 100);
      ASSERT_TRUE(p);
      for (auto& x : p->items)
        all_items.push_back(x);
      if (p->exhausted) break;
    }
  }
  ASSERT_TRUE(b->write_batch(batch_for(all_items)));
  EXPECT_EQ(count("SELECT count(*) FROM embedding_claims"), 0);
  auto end = b->next_pending(scope(), cb, 100);
  ASSERT_TRUE(end);
  EXPECT_TRUE(end->exhausted);
}

TEST_P(PostgresOnly, ReleasedClaimsAreAvailableAtOnceAndDoneWorkIsNeverClaimedTwice) {
  corpus(10);
  OpenOptions a_opts;
  a_opts.use_claims = true;
  a_opts.worker_id = "worker-a";
  OpenOptions b_opts = a_opts;
  b_opts.worker_id = "worker-b";
  auto a = open(a_opts);
  auto b = open(b_opts);
  PendingCursor ca;
  auto pa = a->next_pending(scope(), ca, 5);
  ASSERT_TRUE(pa);
  ASSERT_EQ(pa->items.size(), 5u);
  // A writes 3 of its 5 and releases the rest when its run ends.
  ASSERT_TRUE(a->write_batch(batch_for({pa->items[0], pa->items[1], pa->items[2]})));
  ASSERT_TRUE(a->release_claims());
  EXPECT_EQ(count("SELECT count(*) FROM embedding_claims WHERE expires_at > now()"), 0);
  std::set<std::string> got;
  PendingCursor cb;
  for (;;) {
    auto p = b->next_pending(scope(), cb, 4);
    ASSERT_TRUE(p);
    for (const auto& x : p->items)
      got.insert(x.user_message_id);
    if (p->exhausted) break;
  }
  EXPECT_EQ(got.size(), 7u);
  for (int i = 0; i < 3; ++i)
    EXPECT_FALSE(got.contains(pa->items[static_cast<std::size_t>(i)].user_message_id));
}

TEST_P(PostgresOnly, ForceDoesNotRedoRowsWrittenSinceTheFirstLook) {
  corpus(6);
  {
    PendingCursor c;
    auto p = store_->next_pending(scope(), c, 100);
    ASSERT_TRUE(p);
    ASSERT_TRUE(store_->write_batch(batch_for(p->items)));
  }
  auto forced = open();
  PendingCursor c1;
  auto p1 = forced->next_pending(scope(true), c1, 3);  // fixes the horizon
  ASSERT_TRUE(p1);
  ASSERT_EQ(p1->items.size(), 3u);
  auto rest_first = forced->next_pending(scope(true), c1, 3);
  ASSERT_TRUE(rest_first);
  ASSERT_EQ(rest_first->items.size(), 3u);
  ASSERT_TRUE(forced->write_batch(batch_for(p1->items)));
  // A second pass of the same (follow-mode) store: only the 3 not rewritten.
  PendingCursor c2;
  std::size_t second = 0;
  for (;;) {
    auto p = forced->next_pending(scope(true), c2, 100);
    ASSERT_TRUE(p);
    second += p->items.size();
    if (p->exhausted) break;
  }
  EXPECT_EQ(second, 3u);
}

TEST_P(PostgresOnly, NotifyWakesAFollower) {
  // A database of its own: NOTIFY channels are per database, so no other test's inserts
  // wake the follower (a schema would share them).
  store_.reset();
  backend_ = make_backend(GetParam(), /*own_database=*/true);
  ASSERT_TRUE(backend_);
  store_ = open();
  ASSERT_TRUE(store_);
  ASSERT_TRUE(store_->migrate());
  corpus(1);
  auto follower = open();
  // The first call starts listening; what it may report (the corpus above) is drained
  // until a quiet period is seen before the real check.
  bool quiet = false;
  for (int i = 0; i < 50 && !quiet; ++i) {
    auto r = follower->wait_for_changes(std::chrono::milliseconds(200));
    ASSERT_TRUE(r);
    quiet = !*r;
  }
  ASSERT_TRUE(quiet) << "never a quiet 200 ms on the test server";
  auto waiting = std::async(std::launch::async, [&] {
    const auto start = std::chrono::steady_clock::now();
    auto r = follower->wait_for_changes(std::chrono::seconds(10));
    return std::make_pair(r.has_value() && *r, std::chrono::steady_clock::now() - start);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  corpus(1, 2000);
  const auto [woken, took] = waiting.get();
  EXPECT_TRUE(woken);
  EXPECT_LT(took, std::chrono::seconds(3));
}

TEST_P(PostgresOnly, ReconnectsAfterTheConnectionIsKilled) {
  corpus(20);
  PendingCursor c;
  auto p = store_->next_pending(scope(), c, 10);
  ASSERT_TRUE(p);
  const auto app = backend_->conninfo().substr(backend_->conninfo().rfind('=') + 1);
  backend_->exec(
      fmt::format("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{}' "
                  "AND pid <> pg_backend_pid()",
                  app));
  // The write sees the dead connection: transient (the pipeline redoes it) ...
  auto w = store_->write_batch(batch_for(p->items));
  if (!w) {
    EXPECT_EQ(w.error().code, util::ErrorCode::transient) << w.error().message;
    w = store_->write_batch(batch_for(p->items));  // ... and the redo reconnects.
  }
  ASSERT_TRUE(w) << w.error().message;
  // Reads reconnect by themselves.
  backend_->exec(
      fmt::format("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{}' "
                  "AND pid <> pg_backend_pid()",
                  app));
  auto q = store_->next_pending(scope(), c, 10);
  ASSERT_TRUE(q) << q.error().message;
  EXPECT_EQ(q->items.size(), 10u);
  EXPECT_EQ(count("SELECT count(*) FROM message_embeddings"), 10);
}

TEST_P(PostgresOnly, PasswordsNeverAppearInErrors) {
  PostgresOptions o;
  o.conninfo = "host=127.0.0.1 port=1 user=lens password=hunter2secret dbname=x connect_timeout=2";
  auto s = open_postgres_store(o);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message.find("hunter2secret"), std::string::npos) << s.error().message;
  EXPECT_EQ(s.error().code, util::ErrorCode::transient);
  o.conninfo = "postgresql://lens:hunter2secret@127.0.0.1:1/x?connect_timeout=2";
  s = open_postgres_store(o);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message.find("hunter2secret"), std::string::npos) << s.error().message;
}

TEST_P(PostgresOnly, RefusesASchemaNewerThanItKnows) {
  backend_->exec("INSERT INTO lens_embed_schema_migrations (version) VALUES (99)");
  auto m = store_->migrate();
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, util::ErrorCode::configuration);
}

TEST_P(PostgresOnly, OnlyInitCreatesTheSourceIndexesAndTrigger) {
  backend_->exec(
      "DROP TRIGGER lens_embed_messages_changed ON messages; DROP INDEX messages_user_keyset, "
      "messages_conversation_order");
  auto indexes_and_trigger = [&] {
    return count(
        "SELECT (SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname IN "
        "('messages_user_keyset', 'messages_conversation_order')) + (SELECT count(*) FROM pg_trigger "
        "WHERE tgname = 'lens_embed_messages_changed' AND tgrelid = 'messages'::regclass)");
  };
  // `run`: lens-embed's tables only; nothing on the source table.
  OpenOptions run_options;
  run_options.notify_trigger = false;
  auto run = open(run_options);
  ASSERT_TRUE(run->migrate());
  EXPECT_EQ(indexes_and_trigger(), 0);
  // `init`: the two indexes and the trigger, when missing.
  OpenOptions init_options;
  init_options.source_indexes = true;
  auto init = open(init_options);
  auto m = init->migrate();
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(indexes_and_trigger(), 3);

  const std::string names = backend_->scalar(
      "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE schemaname = "
      "current_schema()");
  for (const char* index : {"messages_user_keyset", "messages_conversation_order", "message_embeddings_pkey",
                            "embedding_failures_pkey", "embedding_claims_pkey", "embedding_claims_worker",
                            "message_embeddings_dimensions"}) {
    EXPECT_NE(names.find(index), std::string::npos) << index << " missing from " << names;
  }
  EXPECT_EQ(backend_->scalar("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                             "'message_embeddings'::regclass AND attname = 'embedding'"),
            "real[]");
  EXPECT_EQ(
      count("SELECT count(*) FROM pg_trigger WHERE tgname = 'lens_embed_messages_changed' AND tgrelid = "
            "'messages'::regclass"),
      1);
  EXPECT_EQ(backend_->scalar("SELECT max(version) FROM lens_embed_schema_migrations"),
            std::to_string(postgres::k_schema_version));
}

// ---- pgvector (PGlite) ------------------------------------------------------------------

TEST_P(Pgvector, UsesAVectorColumnWithAnHnswIndex) {
  OpenOptions o;
  o.hnsw_index = true;
  auto s = open(o);
  ASSERT_TRUE(s->migrate());
  EXPECT_EQ(backend_->scalar("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                             "'message_embeddings'::regclass AND attname = 'embedding'"),
            "vector(4)");
  EXPECT_EQ(count("SELECT count(*) FROM pg_indexes WHERE indexname = 'message_embeddings_hnsw'"), 1);
  corpus(3);
  PendingCursor c;
  auto p = s->next_pending(scope(), c, 10);
  ASSERT_TRUE(p);
  ASSERT_EQ(p->items.size(), 3u);
  auto b = batch_for(p->items);
  b.rows[1].embedding = {0, 1, 0, 0};
  ASSERT_TRUE(s->write_batch(b));
  auto hits = s->search(k_provider, k_model, std::vector<float>{0, 3, 0, 0}, 1);
  ASSERT_TRUE(hits) << hits.error().message;
  ASSERT_EQ(hits->hits.size(), 1u);
  EXPECT_EQ(hits->hits[0].user_message_id, p->items[1].user_message_id);
  EXPECT_NEAR(hits->hits[0].score, 1.0, 1e-4);
  // The index answered (the store reads its plan; the planner alone would scan 3 rows).
  EXPECT_EQ(hits->method, "HNSW index message_embeddings_hnsw (approximate)");
  // An IVFFlat index of the user's own answers the same way.
  backend_->exec("DROP INDEX message_embeddings_hnsw");
  backend_->exec(
      "CREATE INDEX mine_ivfflat ON message_embeddings USING ivfflat (embedding vector_cosine_ops) WITH "
      "(lists = 1)");
  auto ivf = s->search(k_provider, k_model, std::vector<float>{0, 3, 0, 0}, 1);
  ASSERT_TRUE(ivf) << ivf.error().message;
  EXPECT_EQ(ivf->method, "IVFFlat index mine_ivfflat (approximate)");
  ASSERT_EQ(ivf->hits.size(), 1u);
  EXPECT_EQ(ivf->hits[0].user_message_id, p->items[1].user_message_id);
  backend_->exec("DROP INDEX mine_ivfflat");
  auto exact = s->search(k_provider, k_model, std::vector<float>{0, 3, 0, 0}, 1);
  ASSERT_TRUE(exact) << exact.error().message;
  EXPECT_EQ(exact->method, "exact scan");
  ASSERT_EQ(exact->hits.size(), 1u);
  EXPECT_EQ(exact->hits[0].user_message_id, p->items[1].user_message_id);
}

TEST_P(Pgvector, ARowTheColumnRefusesIsRecordedNotRetriedForever) {
  corpus(3);
  PendingCursor c;
  auto p = store_->next_pending(scope(), c, 10);
  ASSERT_TRUE(p);
  auto b = batch_for(p->items);
  b.rows[1].embedding = {1, 2, 3};  // vector(4) refuses a 3-d vector
  auto w = store_->write_batch(b);
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_EQ(count("SELECT count(*) FROM message_embeddings"), 2);
  EXPECT_EQ(backend_->scalar("SELECT reason FROM embedding_failures"), "store_rejected");
  PendingCursor c2;
  auto again = store_->next_pending(scope(), c2, 10);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->items.empty());
}

TEST_P(Pgvector, UsesHalfvecAbove2000Dimensions) {
  backend_->exec(
      "DROP TABLE IF EXISTS message_embeddings, embedding_failures, embedding_runs, embedding_claims, "
      "lens_embed_schema_migrations, lens_embed_input_definitions CASCADE");
  OpenOptions o;
  o.vector_dimensions = 3072;
  o.hnsw_index = true;
  auto s = open(o);
  auto m = s->migrate();
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(backend_->scalar("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                             "'message_embeddings'::regclass AND attname = 'embedding'"),
            "halfvec(3072)");
  corpus(2);
  PendingCursor c;
  auto p = s->next_pending(scope(), c, 10);
  ASSERT_TRUE(p);
  ASSERT_TRUE(s->write_batch(batch_for(p->items, 3072)));
  std::vector<float> q(3072, 0.5f);
  q[0] = 2;
  auto hits = s->search(k_provider, k_model, q, 2);
  ASSERT_TRUE(hits) << hits.error().message;
  EXPECT_EQ(hits->hits.size(), 2u);
  EXPECT_EQ(hits->method, "HNSW index message_embeddings_hnsw (approximate)");
}

INSTANTIATE_TEST_SUITE_P(Backends, PostgresOnly, ::testing::ValuesIn(available_backends(false, true, false)),
                         [](const auto& info) { return info.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Pgvector);
INSTANTIATE_TEST_SUITE_P(Backends, Pgvector, ::testing::ValuesIn(available_backends(false, false, true)),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace lens::store::test
