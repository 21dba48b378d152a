// `run --batch-api` against a stand-in that misbehaves, on SQLite and PostgreSQL (issue
// 13): a rejected input file, 5xx and resets while polling and downloading, an output file
// that is gone, SIGKILL while writing the input file, uploading, polling and downloading,
// and (PostgreSQL) a synchronous worker beside a batch run: nothing lost, nothing paid
// twice.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "batch_fixture.h"

namespace lens::batch_test {
namespace {

using namespace std::chrono_literals;
using Faults = BatchE2E;

TEST_P(Faults, RejectedFilesAndFaultsWhilePollingAndDownloadingLoseNothing) {
  auto o = options();
  o.batch.validating_ms = 30;
  o.batch.completion_ms = 150;
  o.batch.shuffle_output = true;
  o.batch.fail_validation = 1;  // the first batch's input file is rejected: resubmitted
  o.batch.poll_503 = {2, 0.1};
  o.batch.poll_reset = {1, 0.05};
  o.batch.download_503 = {1, 0};
  o.batch.download_reset = {1, 0};
  o.batch.download_drop = {1, 0};
  o.batch.download_reset_after_bytes = 1500;
  start(o);
  load(150);
  EXPECT_EQ(until_done(args({"--batch-queue-tokens", "4000"})), 0);
  EXPECT_EQ(provider_->stat("batch_failed_validation"), 1);
  EXPECT_GT(provider_->stat("batch_poll_503"), 0);
  EXPECT_GT(provider_->stat("batch_download_503"), 0);
  EXPECT_GT(provider_->stat("batch_download_reset") + provider_->stat("batch_download_drop"), 0);
  expect_verified();
  expect_paid_once();
  EXPECT_EQ(open_batches(), 0);
}

TEST_P(Faults, AnOutputFileThatIsGoneIsSubmittedAgain) {
  auto o = options();
  o.batch.outputs_deleted = true;
  start(o);
  load(30);
  // The finished batch's output answers 404: its items are released, not lost.
  const auto first = lens(args());
  EXPECT_NE(first.exit_code, 2) << first.err;
  EXPECT_EQ(rows(), 0);
  EXPECT_TRUE(contains(first.err, "is gone")) << first.err;
  provider_->batch().update([](stand_in::BatchOptions& b) { b.outputs_deleted = false; });
  EXPECT_EQ(until_done(args()), 0);
  expect_verified();
  // The lost output was paid for (as OpenAI bills a completed batch): once more, no more.
  EXPECT_EQ(provider_->stat("billed_batch_inputs"), 2 * rows());
}

// Kills a --follow batch run as soon as `moment` holds, then reruns to the end.
TEST_P(Faults, SigkillAtEveryStageThenRerunLosesNothingAndPaysOnce) {
  auto o = options();
  o.default_dimensions = 1536;  // large output files: a wide download window
  dimensions_ = "1536";
  o.batch.validating_ms = 100;
  o.batch.completion_ms = 300;
  o.batch.download_reset = {1, 0};
  o.batch.download_reset_after_bytes = 200000;
  start(o);
  load(400);
  const auto run_args = [&] { return args({"--batch-queue-tokens", "6000", "--follow"}, "16"); };
  const auto jsonl_written = [this] {
    for (const auto& e : std::filesystem::directory_iterator(dir_.path()))
      if (e.path().extension() == ".jsonl") return true;
    return false;
  };
  const auto stat_grew = [this](const std::string& name) -> std::function<bool()> {
    const auto before = provider_->stat(name);
    return [this, name, before] { return provider_->stat(name) > before; };
  };
  for (const std::string moment : {"writing the input file", "uploading", "polling", "downloading"}) {
    std::function<bool()> holds = jsonl_written;
    if (moment == "uploading") holds = stat_grew("batch_files_uploaded");
    if (moment == "polling") holds = stat_grew("batch_polls");
    if (moment == "downloading") holds = stat_grew("batch_downloads_started");
    test::SpawnOptions so;
    so.cwd = dir_.path();
    so.env = env();
    const pid_t pid = test::spawn_lens(run_args(), so);
    EXPECT_TRUE(test::wait_until(holds, 20s, 1ms)) << moment;
    EXPECT_FALSE(test::try_wait(pid)) << "ended before it could be killed " << moment;
    test::kill_and_wait(pid, SIGKILL);
  }
  auto final_args = run_args();
  final_args.pop_back();  // without --follow
  EXPECT_EQ(until_done(final_args, 60), 0);
  expect_verified();
  expect_paid_once();
  EXPECT_EQ(open_batches(), 0);
}

// Both at once on one PostgreSQL (SQLite has one writer at a time): every item is
// embedded by one of them only.
using SharedPostgres = BatchE2E;

TEST_P(SharedPostgres, ASynchronousWorkerAndABatchRunEmbedNothingTwice) {
  auto o = options();
  o.latency_ms = 20;
  o.batch.completion_ms = 200;
  start(o);
  load(600);
  test::SpawnOptions so;
  so.cwd = dir_.path();
  so.env = env();
  // The batch run first, until its first file is up (so both get work), then the worker;
  // the batch run keeps submitting as its small queue drains, beside the worker.
  const pid_t batch = test::spawn_lens(args({"--batch-queue-tokens", "3000"}), so);
  EXPECT_TRUE(test::wait_until([&] { return provider_->stat("batch_files_uploaded") > 0; }, 20s));
  const pid_t sync = test::spawn_lens(sync_args({"--batch-size", "8"}), so);
  const int batch_exit = test::wait_exit(batch);
  const int sync_exit = test::wait_exit(sync);
  EXPECT_TRUE(batch_exit == 0 || batch_exit == 1) << batch_exit;
  EXPECT_TRUE(sync_exit == 0 || sync_exit == 1) << sync_exit;
  EXPECT_EQ(until_done(args()), 0);
  const auto tail = lens(sync_args());
  EXPECT_EQ(tail.exit_code, 0) << tail.err;
  expect_verified();
  expect_paid_once();
  EXPECT_GT(provider_->stat("billed_sync_inputs"), 0);
  EXPECT_GT(provider_->stat("billed_batch_inputs"), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, Faults, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });
INSTANTIATE_TEST_SUITE_P(Backends, SharedPostgres, ::testing::Values("postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace lens::batch_test
