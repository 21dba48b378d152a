// One writer per SQLite file, through the real binary (issue 11): two `run`s on one file,
// started together or 1 s apart, against the stand-in provider: the second waits for the
// first (saying whose run it waits for), nothing fails on "database is locked", and the
// stand-in sees each input exactly once.
#include <gtest/gtest.h>
#include <signal.h>

#include <fmt/core.h>
#include <chrono>
#include <thread>

#include "support/corpus.h"
#include "support/process.h"
#include "support/source_schema.h"
#include "support/sql.h"
#include "support/stand_in.h"

namespace {

using namespace std::chrono_literals;

constexpr const char* k_key = "sk-single-writer-test";

class SqliteWriterE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    db_path_ = dir_ / "lens.db";
    auto db = lens::test::Db::open("sqlite:" + db_path_);
    ASSERT_TRUE(db);
    ASSERT_EQ(lens::test::create_source_schema(*db), "");
    lens::test::CorpusOptions co;
    co.exchanges = 1500;
    co.p_long = 0;    // one input per exchange: the stand-in's input count is the exchange count
    co.p_poison = 0;  // and none fails
    corpus_ = lens::test::make_corpus(co);
    ASSERT_EQ(db->insert(corpus_.messages), "");
    // Slow enough that the first run is still sending when the second starts (~2 s at
    // least: 94 requests of 16 inputs, one at a time, 20 ms each).
    lens::stand_in::StandInOptions so;
    so.api_key = k_key;
    so.latency_ms = 20;
    stand_in_ = std::make_unique<lens::test::StandIn>(so);
    ASSERT_TRUE(stand_in_->ok());
  }
  void TearDown() override {
    if (HasFailure()) dir_.keep();
  }

  pid_t start(const std::string& name) {
    std::vector<std::string> args = {
        "run",          "--db", "sqlite:" + db_path_, "--batch-size", "16", "--concurrency", "1",
        "--dimensions", "64"};
    for (const auto& a : stand_in_->provider_args("text-embedding-3-small"))
      args.push_back(a);
    lens::test::SpawnOptions o;
    o.cwd = dir_.path();
    o.out_path = dir_ / (name + ".out");
    o.err_path = dir_ / (name + ".err");
    o.env = {{"SUPERMIND_API_KEY", k_key}};
    return lens::test::spawn_lens(args, o);
  }
  std::string output(const std::string& name) {
    return lens::test::slurp(dir_ / (name + ".out")) + lens::test::slurp(dir_ / (name + ".err"));
  }
  long long scalar(const std::string& sql) {
    auto db = lens::test::Db::open("sqlite:" + db_path_);
    const auto v = db ? db->scalar(sql) : std::nullopt;
    EXPECT_TRUE(v) << sql;
    return v ? std::stoll(*v) : -1;
  }

  // Both ran to completion, every exchange has its row, the provider saw each input once.
  void expect_each_input_once(const std::string& first, const std::string& second) {
    EXPECT_EQ(scalar("SELECT count(*) FROM message_embeddings"), corpus_.eligible);
    EXPECT_EQ(scalar("SELECT count(*) FROM embedding_failures"), 0);
    EXPECT_EQ(stand_in_->stat("ok_inputs"), corpus_.eligible) << "inputs sent twice (or lost):\n"
                                                              << output(first) << output(second);
    EXPECT_EQ(scalar("SELECT count(*) FROM embedding_runs WHERE status = 'completed'"), 2);
  }

  lens::test::TempDir dir_{"single_writer"};
  std::string db_path_;
  lens::test::Corpus corpus_;
  std::unique_ptr<lens::test::StandIn> stand_in_;
};

TEST_F(SqliteWriterE2E, TwoRunsStartedTogetherSendEachInputOnce) {
  const pid_t a = start("a");
  const pid_t b = start("b");
  ASSERT_GT(a, 0);
  ASSERT_GT(b, 0);
  EXPECT_EQ(lens::test::wait_exit(a), 0) << output("a");
  EXPECT_EQ(lens::test::wait_exit(b), 0) << output("b");
  // At most one waited for the other (which one depends on who opened the file first).
  const bool a_waited =
      output("a").find(fmt::format("waiting for the run of pid {}", b)) != std::string::npos;
  const bool b_waited =
      output("b").find(fmt::format("waiting for the run of pid {}", a)) != std::string::npos;
  EXPECT_FALSE(a_waited && b_waited) << output("a") << "\n---\n" << output("b");
  expect_each_input_once("a", "b");
}

TEST_F(SqliteWriterE2E, ASecondRunOneSecondLaterWaitsAndSendsNothingTwice) {
  const auto started = std::chrono::steady_clock::now();
  const pid_t a = start("a");
  ASSERT_GT(a, 0);
  // The first run holds the file (its pid is in the lock file) before the second starts,
  // and the second starts 1 s after the first.
  ASSERT_TRUE(lens::test::wait_until(
      [&] { return lens::test::slurp(db_path_ + ".lens-embed.lock").starts_with(std::to_string(a) + " "); },
      60s))
      << output("a");
  std::this_thread::sleep_until(started + 1s);
  // Still at work (94 requests of 20 ms each take longer than that), or this is not the
  // overlap under test.
  ASSERT_FALSE(lens::test::try_wait(a).has_value()) << "the first run ended within 1 s:\n" << output("a");
  const pid_t b = start("b");
  ASSERT_GT(b, 0);
  EXPECT_EQ(lens::test::wait_exit(a), 0) << output("a");
  EXPECT_EQ(lens::test::wait_exit(b), 0) << output("b");
  EXPECT_NE(output("b").find(fmt::format("waiting for the run of pid {} on host", a)), std::string::npos)
      << output("b");
  expect_each_input_once("a", "b");
}

}  // namespace
