// `run --batch-api` through the binary against the stand-in's Batch API, on SQLite and on
// PostgreSQL (issue 13): a backfill that completes and pays each item once, items held
// while their batch runs (reruns and synchronous runs leave them alone), an edit during a
// batch re-embedded with the new text, expiry and per-request errors (400, 500), a
// provider without the Batch API.
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "batch_fixture.h"

namespace lens::batch_test {
namespace {

using Backfill = BatchE2E;

TEST_P(Backfill, CompletesInShuffledOrderAndPaysEachItemOnce) {
  auto o = options();
  o.batch.shuffle_output = true;
  o.batch.validating_ms = 50;
  o.batch.completion_ms = 200;
  o.batch.finalizing_ms = 50;
  start(o);
  load(120);
  // A small queue limit cuts the backlog into several batches, each waited for.
  EXPECT_EQ(until_done(args({"--batch-queue-tokens", "2000"})), 0);
  expect_verified();
  const auto v = verify();
  EXPECT_EQ(v.rows + v.failures, v.eligible);
  expect_paid_once();
  EXPECT_EQ(provider_->stat("billed_sync_inputs"), 0);
  EXPECT_GT(provider_->stat("batch_created"), 1);
  EXPECT_EQ(open_batches(), 0);
  // Nothing left: a rerun submits nothing.
  const auto billed = provider_->stat("billed_batch_inputs");
  const auto again = lens(args());
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(provider_->stat("billed_batch_inputs"), billed);
}

TEST_P(Backfill, HeldWhileRunningEditedReembeddedSyncLeavesThemAlone) {
  auto o = options();
  o.batch.completion_ms = -1;  // nothing is processed until the test says so
  start(o);
  load(40);
  const auto first = lens(args());
  EXPECT_EQ(first.exit_code, 1) << first.err;
  EXPECT_TRUE(contains(first.err, "items are in flight")) << first.err;
  EXPECT_TRUE(contains(first.err, "the oldest submitted ")) << first.err;
  const long long held = count("SELECT count(*) FROM embedding_batch_items");
  EXPECT_EQ(held, verify().eligible);
  const auto status = lens({"status", "--db", target_});
  EXPECT_TRUE(contains(status.out, "in batches: " + std::to_string(held))) << status.out;
  const auto created = provider_->stat("batch_created");

  // A rerun while the batch runs submits nothing new.
  const auto rerun = lens(args());
  EXPECT_EQ(rerun.exit_code, 1) << rerun.err;
  EXPECT_EQ(provider_->stat("batch_created"), created);

  // A synchronous run leaves the held exchanges alone.
  const auto s = lens(sync_args());
  EXPECT_EQ(s.exit_code, 0) << s.err;
  EXPECT_EQ(provider_->stat("billed_sync_inputs"), 0);
  EXPECT_EQ(rows(), 0);

  // An edit while the batch runs: its result is discarded and the new text embedded.
  const std::string later =
      pg() ? "now() + interval '1 minute'" : "strftime('%Y-%m-%dT%H:%M:%fZ','now','+1 minute')";
  ASSERT_EQ(
      db_->exec("UPDATE messages SET content = content || ' (edited)', updated_at = " + later +
                " WHERE id = (SELECT user_message_id FROM embedding_batch_items ORDER BY user_message_id "
                "LIMIT 1)"),
      "");
  provider_->batch().update([](stand_in::BatchOptions& b) { b.completion_ms = 0; });
  provider_->batch().complete();
  const auto collect = lens(args());
  EXPECT_TRUE(contains(collect.out, "1 discarded")) << collect.out;
  EXPECT_EQ(until_done(args()), 0);
  expect_verified();    // the verifier hashes the text as it is now: the edited one
  expect_paid_once(1);  // the old text's result, discarded, was paid for
  EXPECT_EQ(rows(), verify().eligible);
}

TEST_P(Backfill, ExpiredItemsAreResubmittedAndErrorsRecorded) {
  auto o = options();
  o.batch.completion_ms = -1;
  o.batch.p_request_500 = 0.2;
  start(o);
  load(60, 0.05);
  // One input per request: a 400 (context length) or a 500 is one item's.
  const auto first = lens(args({}, "1"));
  EXPECT_EQ(first.exit_code, 1) << first.err;
  const long long items = count("SELECT count(*) FROM embedding_batch_items");
  provider_->batch().expire({}, 0.5);
  // The expired half is released and submitted again (the stand-in keeps it waiting).
  const auto second = lens(args({}, "1"));
  EXPECT_EQ(second.exit_code, 1) << second.err;
  EXPECT_GT(count("SELECT count(*) FROM embedding_batches"), 1);
  EXPECT_GT(rows(), 0);
  EXPECT_LT(rows(), items);
  provider_->batch().update([](stand_in::BatchOptions& b) {
    b.completion_ms = 0;
    b.p_request_500 = 0;
  });
  provider_->batch().complete();
  const auto third = lens(args({}, "1"));
  EXPECT_EQ(third.exit_code, 1) << third.err;  // transient failures left, not yet due
  const long long transient =
      count("SELECT count(*) FROM embedding_failures WHERE reason = 'retries_exhausted'");
  const long long rejected = count("SELECT count(*) FROM embedding_failures WHERE reason = 'context_length'");
  EXPECT_GT(transient, 0);
  EXPECT_GT(rejected, 0);
  EXPECT_EQ(rows() + transient + rejected, verify().eligible);
  expect_paid_once();
  EXPECT_EQ(open_batches(), 0);
  // `failures --retry` embeds the transient ones (synchronously); the rejected stay.
  const auto retry = lens({"failures", "--db", target_, "--provider", "supermind", "--model", k_model,
                           "--retry", "--base-url", provider_->base_url(), "--dimensions", "16"});
  EXPECT_EQ(count("SELECT count(*) FROM embedding_failures WHERE reason = 'retries_exhausted'"), 0)
      << retry.out << retry.err;
  expect_verified();
}

TEST_P(Backfill, ProviderWithoutBatchApiIsAConfigurationError) {
  auto o = options();
  o.batch.enabled = false;
  start(o);
  load(5);
  const auto r = lens(args());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(contains(r.err, "no Batch API")) << r.err;
  EXPECT_TRUE(contains(r.err, "without --batch-api")) << r.err;
  EXPECT_EQ(count("SELECT count(*) FROM embedding_batches"), 0);
  EXPECT_EQ(provider_->stat("billed_sync_inputs"), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, Backfill, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace lens::batch_test
