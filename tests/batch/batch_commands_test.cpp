// The commands around a batch backfill, on SQLite and PostgreSQL (issue 13): `run
// --dry-run --batch-api` shows the batch price beside the synchronous one, and `batches`
// lists batches (status, progress, age, tokens, cost) and cancels them (--cancel ID,
// --cancel-all), whose items the next run submits again.
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "batch_fixture.h"

namespace lens::batch_test {
namespace {

using json = nlohmann::json;
using Commands = BatchE2E;

TEST_P(Commands, DryRunShowsTheBatchPriceBesideTheSynchronousOne) {
  start();
  load(50);
  const auto text = lens(args({"--dry-run"}));
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_TRUE(contains(text.out, "by batch (--batch-api): estimated cost $")) << text.out;
  const auto j = json::parse(lens(args({"--dry-run", "--json"})).out, nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  const double usd = j["dry_run"]["usd"].get<double>();
  EXPECT_GT(usd, 0);
  EXPECT_DOUBLE_EQ(j["dry_run"]["batch_usd"].get<double>(), usd / 2);
  // Nothing was sent, nothing recorded.
  EXPECT_EQ(provider_->stat("batch_files_uploaded"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM embedding_batches"), 0);
  // Without --batch-api the dry run shows the synchronous price only.
  const auto sync = lens(sync_args({"--dry-run"}));
  EXPECT_FALSE(contains(sync.out, "by batch")) << sync.out;
}

TEST_P(Commands, BatchesListsAndCancelsThenTheNextRunSubmitsTheItemsAgain) {
  auto o = options();
  o.batch.completion_ms = -1;
  start(o);
  load(40);
  const auto before = lens({"batches", "--db", target_});  // read-only: the tables are not there yet
  EXPECT_EQ(before.exit_code, 2) << before.err;
  EXPECT_TRUE(contains(before.err, "init")) << before.err;
  const auto first = lens(args({"--batch-queue-tokens", "100000"}, "4"));
  EXPECT_EQ(first.exit_code, 1) << first.err;

  const auto list = lens({"batches", "--db", target_});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_TRUE(contains(list.out, "(unfinished)")) << list.out;
  EXPECT_TRUE(contains(list.out, "lens-embed run --batch-api collects them")) << list.out;
  const auto listed = json::parse(lens({"batches", "--db", target_, "--json"}).out, nullptr, false);
  ASSERT_TRUE(listed.is_array()) << listed;
  ASSERT_EQ(listed.size(), 1u);
  const auto& b = listed[0];
  EXPECT_EQ(b["items"].get<long long>(), verify().eligible);
  EXPECT_GT(b["tokens"].get<long long>(), 0);
  EXPECT_GT(b["usd"].get<double>(), 0);
  EXPECT_FALSE(b["done"].get<bool>());

  std::vector<std::string> cancel = {"batches", "--db", target_};
  for (auto& s : provider_->provider_args(k_model))
    cancel.push_back(s);
  auto bad = cancel;
  bad.insert(bad.end(), {"--cancel", "lensb-nosuchbatch"});
  const auto refused = lens(bad);
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_TRUE(contains(refused.err, "--cancel lensb-nosuchbatch")) << refused.err;

  auto one = cancel;
  one.insert(one.end(), {"--cancel", b["key"].get<std::string>()});
  const auto cancelled = lens(one);
  EXPECT_EQ(cancelled.exit_code, 0) << cancelled.err;
  EXPECT_EQ(provider_->stat("batch_cancel_requests"), 1);

  // The next run applies the cancellation (its items released) and submits them again.
  const auto second = lens(args({"--batch-queue-tokens", "100000"}, "4"));
  EXPECT_EQ(second.exit_code, 1) << second.err;
  EXPECT_EQ(count("SELECT count(*) FROM embedding_batches"), 2);
  EXPECT_EQ(open_batches(), 1);

  auto all = cancel;
  all.push_back("--cancel-all");
  EXPECT_EQ(lens(all).exit_code, 0);
  EXPECT_EQ(provider_->stat("batch_cancel_requests"), 2);
  provider_->batch().update([](stand_in::BatchOptions& b) { b.completion_ms = 0; });
  EXPECT_EQ(until_done(args({"--batch-queue-tokens", "100000"}, "4")), 0);
  expect_verified();
  expect_paid_once();
  const auto after = json::parse(lens({"batches", "--db", target_, "--json"}).out, nullptr, false);
  ASSERT_TRUE(after.is_array());
  // The second batch, cancelled before it was polled again, may have finished meanwhile.
  ASSERT_GE(after.size(), 2u);
  EXPECT_EQ(after.back()["status"], "cancelled");  // newest first: the first batch is last
}

INSTANTIATE_TEST_SUITE_P(Backends, Commands, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace lens::batch_test
