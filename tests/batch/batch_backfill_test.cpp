// `run --batch-api` through the binary against the stand-in's Batch API, on SQLite
// (issue 13): a backfill that completes, reruns while batches run, edits during a batch,
// expiry, per-request errors, SIGKILL then rerun, a synchronous run beside held items, a
// provider without the Batch API, and PostgreSQL refused for now.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "support/paths.h"
#include "support/process.h"
#include "support/sql.h"
#include "support/stand_in.h"
#include "verifier.h"

namespace {

namespace test = lens::test;
using namespace std::chrono_literals;

constexpr const char* k_key = "sk-batch-test-key-0000";
constexpr const char* k_model = "text-embedding-3-small";

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class BatchBackfill : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure()) dir_.keep();
  }
  static lens::stand_in::StandInOptions options() {
    lens::stand_in::StandInOptions o;
    o.api_key = k_key;
    o.default_dimensions = 16;
    o.reject_marker = "REJECT-ME";
    return o;
  }
  void start(lens::stand_in::StandInOptions o = options()) {
    provider_ = std::make_unique<test::StandIn>(std::move(o));
    ASSERT_TRUE(provider_->ok());
  }
  void generate(int conversations) {
    const auto r = test::run(
        {test::sample_corpus_binary(), "--sqlite", db_, "--conversations", std::to_string(conversations)},
        dir_.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  std::vector<std::string> args(std::vector<std::string> extra = {}, const std::string& batch_size = "8") {
    std::vector<std::string> a = {"run", "--db", "sqlite:" + db_};
    for (auto& s : provider_->provider_args(k_model))
      a.push_back(s);
    a.insert(a.end(), {"--batch-api", "--dimensions", "16", "--batch-size", batch_size});
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  test::Output lens(const std::vector<std::string>& a) {
    test::Env env;
    env.emplace("SUPERMIND_API_KEY", k_key);
    return test::run_lens(a, dir_.path(), env);
  }
  test::Db& sql() {
    if (!sql_) sql_ = test::Db::open("sqlite:" + db_);
    return *sql_;
  }
  long long count(const std::string& q) {
    const auto v = sql().scalar(q);
    EXPECT_TRUE(v) << sql().last_error() << "\n" << q;
    return v && !v->empty() ? std::stoll(*v) : -1;
  }
  long long eligible() {
    return count(
        "SELECT count(*) FROM messages WHERE role = 'user' AND trim(coalesce(content, ''), ' ' || "
        "char(9,10,11,12,13)) "
        "<> ''");
  }
  // Texts that more than one eligible message has: the stand-in bills by text, so each of
  // these is billed once per message that has it, which is not paying an item twice.
  long long shared_texts() {
    return count(
        "SELECT count(*) FROM (SELECT content FROM messages WHERE role = 'user' AND "
        "trim(coalesce(content, ''), ' ' || char(9,10,11,12,13)) <> '' GROUP BY content HAVING count(*) > "
        "1)");
  }
  lens::verify::VerifyReport verify() {
    lens::verify::VerifyOptions v;
    v.db = "sqlite:" + db_;
    v.model = k_model;
    return lens::verify::verify(v);
  }
  void expect_verified() {
    const auto r = verify();
    EXPECT_TRUE(r.ok()) << r.to_json();
    EXPECT_EQ(r.missing, 0);
  }

  test::TempDir dir_{"batch-backfill"};
  std::string db_ = dir_ / "lens.db";
  std::unique_ptr<test::StandIn> provider_;
  std::unique_ptr<test::Db> sql_;
};

TEST_F(BatchBackfill, CompletesAndPaysEachItemOnce) {
  auto o = options();
  o.batch.shuffle_output = true;
  start(o);
  generate(30);
  const auto r = lens(args({"--batch-queue-tokens", "2000"}));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "batch run")) << r.out;
  expect_verified();
  const long long rows = count("SELECT count(*) FROM message_embeddings");
  EXPECT_EQ(rows + count("SELECT count(*) FROM embedding_failures"), eligible());
  EXPECT_EQ(provider_->stat("billed_more_than_once"), shared_texts());
  EXPECT_EQ(provider_->stat("billed_sync_inputs"), 0);
  EXPECT_EQ(provider_->stat("billed_batch_inputs"), rows);
  // The small queue limit cut the backlog into several batches, each finished before the next.
  EXPECT_GT(provider_->stat("batch_created"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM embedding_batches WHERE done = 0"), 0);
  // Nothing left: a rerun submits nothing.
  const auto again = lens(args());
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(provider_->stat("billed_batch_inputs"), rows);
}

TEST_F(BatchBackfill, HeldWhileRunningEditedReembeddedSyncLeavesThemAlone) {
  auto o = options();
  o.batch.completion_ms = -1;  // nothing is processed until the test says so
  start(o);
  generate(20);
  const auto first = lens(args());
  EXPECT_EQ(first.exit_code, 1) << first.err;
  EXPECT_TRUE(contains(first.err, "items are in flight")) << first.err;
  EXPECT_TRUE(contains(first.err, "rerun")) << first.err;
  const long long held = count("SELECT count(*) FROM embedding_batch_items");
  EXPECT_EQ(held, eligible());
  const auto created = provider_->stat("batch_created");

  // A rerun while the batch runs submits nothing new.
  const auto rerun = lens(args());
  EXPECT_EQ(rerun.exit_code, 1) << rerun.err;
  EXPECT_EQ(provider_->stat("batch_created"), created);

  // A synchronous run leaves the held exchanges alone.
  std::vector<std::string> sync = {"run", "--db", "sqlite:" + db_};
  for (auto& s : provider_->provider_args(k_model))
    sync.push_back(s);
  sync.insert(sync.end(), {"--dimensions", "16"});
  const auto s = lens(sync);
  EXPECT_EQ(s.exit_code, 0) << s.err;
  EXPECT_EQ(provider_->stat("billed_sync_inputs"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM message_embeddings"), 0);

  // An edit while the batch runs: its result is discarded and the new text embedded.
  ASSERT_EQ(
      sql().exec("UPDATE messages SET content = content || ' (edited)', "
                 "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now', '+1 minute') WHERE id = "
                 "(SELECT user_message_id FROM embedding_batch_items ORDER BY user_message_id LIMIT 1)"),
      "");
  provider_->batch().update([](lens::stand_in::BatchOptions& b) { b.completion_ms = 0; });
  provider_->batch().complete();
  const auto collect = lens(args());
  EXPECT_EQ(collect.exit_code, 0) << collect.out << collect.err;
  EXPECT_TRUE(contains(collect.out, "1 discarded")) << collect.out;
  expect_verified();
  EXPECT_EQ(provider_->stat("billed_more_than_once"), shared_texts());
  EXPECT_EQ(count("SELECT count(*) FROM message_embeddings"), eligible());
}

TEST_F(BatchBackfill, ExpiredItemsAreResubmittedAndErrorsRecorded) {
  auto o = options();
  o.batch.completion_ms = -1;
  o.batch.p_request_500 = 0.2;
  start(o);
  generate(30);
  // One input per request: the 500s (drawn per request from the stand-in's fixed seed)
  // fall among the half processed before the expiry.
  const auto first = lens(args({}, "1"));
  EXPECT_EQ(first.exit_code, 1) << first.err;
  const long long items = count("SELECT count(*) FROM embedding_batch_items");
  provider_->batch().expire({}, 0.5);
  // The expired half is released and submitted again (the stand-in keeps it waiting).
  const auto second = lens(args({}, "1"));
  EXPECT_EQ(second.exit_code, 1) << second.err;
  EXPECT_GT(count("SELECT count(*) FROM embedding_batches"), 1);
  EXPECT_GT(count("SELECT count(*) FROM message_embeddings"), 0);
  EXPECT_LT(count("SELECT count(*) FROM message_embeddings"), items);
  provider_->batch().update([](lens::stand_in::BatchOptions& b) {
    b.completion_ms = 0;
    b.p_request_500 = 0;
  });
  provider_->batch().complete();
  const auto third = lens(args({}, "1"));
  // The 500s of the first batch are recorded as transient failures: retried by later runs.
  const long long failed =
      count("SELECT count(*) FROM embedding_failures WHERE reason = 'retries_exhausted'");
  EXPECT_GT(failed, 0);
  EXPECT_EQ(third.exit_code, 1) << third.err;  // transient failures left, not yet due
  EXPECT_EQ(count("SELECT count(*) FROM message_embeddings") + failed, eligible());
  EXPECT_EQ(provider_->stat("billed_more_than_once"), shared_texts());
  EXPECT_EQ(count("SELECT count(*) FROM embedding_batches WHERE done = 0"), 0);
}

TEST_F(BatchBackfill, SigkillThenRerunLosesNothingAndPaysOnce) {
  auto o = options();
  o.batch.completion_ms = 300;
  o.batch.download_reset.next = 1;
  o.batch.download_reset_after_bytes = 2000;
  start(o);
  generate(60);
  test::Env env;
  env.emplace("SUPERMIND_API_KEY", k_key);
  // Killed at several moments of its life, then rerun until it is done.
  for (int delay_ms : {20, 150, 400}) {
    test::SpawnOptions so;
    so.cwd = dir_.path();
    so.env = env;
    const pid_t pid = test::spawn_lens(args({"--batch-queue-tokens", "3000", "--follow"}), so);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    test::kill_and_wait(pid, SIGKILL);
  }
  int exit_code = 1;
  for (int i = 0; i < 20 && exit_code != 0; ++i) {
    const auto r = lens(args({"--batch-queue-tokens", "3000"}));
    exit_code = r.exit_code;
    if (exit_code != 0) std::this_thread::sleep_for(400ms);
  }
  EXPECT_EQ(exit_code, 0);
  expect_verified();
  EXPECT_EQ(provider_->stat("billed_more_than_once"), shared_texts());
  EXPECT_EQ(provider_->stat("billed_batch_inputs"), count("SELECT count(*) FROM message_embeddings"));
}

TEST_F(BatchBackfill, ProviderWithoutBatchApiIsAConfigurationError) {
  auto o = options();
  o.batch.enabled = false;
  start(o);
  generate(3);
  const auto r = lens(args());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(contains(r.err, "without --batch-api")) << r.err;
  EXPECT_EQ(count("SELECT count(*) FROM embedding_batches"), 0);
}

}  // namespace
