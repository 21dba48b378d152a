// A crash gives its claims back at once (issue 11), through the real binary on PostgreSQL:
// a single worker that has claimed the whole backlog is SIGKILLed, and its restart sends
// its first request to the stand-in within 2 s, although the dead worker's leases (300 s)
// are far from over. Then it finishes: every exchange once.
#include <gtest/gtest.h>
#include <signal.h>

#include <fmt/core.h>
#include <chrono>
#include <thread>

#include "support/corpus.h"
#include "support/pg.h"
#include "support/process.h"
#include "support/source_schema.h"
#include "support/sql.h"
#include "support/stand_in.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* k_key = "sk-liveness-test";

class PgClaimsLiveness : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(lens::test::PgServer::shared().ok()) << lens::test::PgServer::shared().error();
    schema_ = std::make_unique<lens::test::PgScratch>(lens::test::PgServer::shared(), "live");
    ASSERT_TRUE(schema_->ok()) << schema_->error();
    db_ = lens::test::Db::open(schema_->url());
    ASSERT_TRUE(db_);
    ASSERT_EQ(lens::test::create_source_schema(*db_), "");
  }
  void TearDown() override {
    db_.reset();
    schema_.reset();
    if (HasFailure()) dir_.keep();
  }

  pid_t start(const lens::test::StandIn& provider, const std::string& name) {
    std::vector<std::string> args = {
        "run", "--db", schema_->url(), "--batch-size", "8", "--concurrency", "1", "--dimensions", "64"};
    for (const auto& a : provider.provider_args("text-embedding-3-small"))
      args.push_back(a);
    lens::test::SpawnOptions o;
    o.cwd = dir_.path();
    o.out_path = dir_ / (name + ".out");
    o.err_path = dir_ / (name + ".err");
    // The default lease (300 s): what the restart must not wait for.
    o.env = {{"SUPERMIND_API_KEY", k_key}};
    return lens::test::spawn_lens(args, o);
  }
  std::string output(const std::string& name) {
    return lens::test::slurp(dir_ / (name + ".out")) + lens::test::slurp(dir_ / (name + ".err"));
  }
  long long scalar(const std::string& sql) {
    const auto v = db_->scalar(sql);
    EXPECT_TRUE(v) << db_->last_error() << "\n" << sql;
    return v && !v->empty() ? std::stoll(*v) : -1;
  }

  lens::test::TempDir dir_{"pg_liveness"};
  std::unique_ptr<lens::test::PgScratch> schema_;
  std::unique_ptr<lens::test::Db> db_;
};

TEST_F(PgClaimsLiveness, ARestartAfterSigkillSendsItsFirstRequestWithinTwoSeconds) {
  lens::test::CorpusOptions co;
  co.exchanges = 600;  // one page of the reader (1000): the first worker claims them all at once
  co.p_long = 0;
  co.p_poison = 0;
  const auto corpus = lens::test::make_corpus(co);
  ASSERT_EQ(db_->insert(corpus.messages), "");
  ASSERT_EQ(lens::test::run_lens({"init", "--db", schema_->url()}, dir_.path()).exit_code, 0);
  lens::stand_in::StandInOptions so;
  so.api_key = k_key;
  so.latency_ms = 50;  // 75 requests one at a time: the first worker is far from done when killed
  lens::test::StandIn provider(so);
  ASSERT_TRUE(provider.ok());

  const pid_t first = start(provider, "first");
  ASSERT_GT(first, 0);
  ASSERT_TRUE(lens::test::wait_until([&] { return provider.stat("ok_inputs") >= 40; }, 120s))
      << output("first");
  ASSERT_EQ(lens::test::kill_and_wait(first, SIGKILL), 128 + SIGKILL) << output("first");
  // What makes the test: the dead worker still holds live leases on work not done.
  const long long held = scalar(
      fmt::format("SELECT count(*) FROM embedding_claims WHERE worker LIKE '%:{}' AND expires_at > now() + "
                  "interval '200 seconds'",
                  first));
  ASSERT_GT(held, 100) << "the killed worker held no long leases: nothing to take over";
  // Requests of the dead worker that were on their way have arrived by now.
  long long before = -1;
  ASSERT_TRUE(lens::test::wait_until(
      [&] {
        const long long now = provider.stat("requests");
        const bool steady = now == before;
        before = now;
        return steady;
      },
      10s, 200ms));

  const auto restarted = Clock::now();
  const pid_t second = start(provider, "second");
  ASSERT_GT(second, 0);
  const bool sent = lens::test::wait_until([&] { return provider.stat("requests") > before; }, 60s, 5ms);
  const auto first_request = std::chrono::duration<double>(Clock::now() - restarted).count();
  if (!sent) lens::test::kill_and_wait(second, SIGKILL);  // no process outlives the test
  ASSERT_TRUE(sent) << output("second");
  EXPECT_LT(first_request, 2.0) << "the restart waited for the dead worker's leases:\n" << output("second");

  ASSERT_EQ(lens::test::wait_exit(second), 0) << output("second");
  EXPECT_EQ(scalar("SELECT count(*) FROM message_embeddings"), corpus.eligible);
  EXPECT_EQ(scalar("SELECT count(DISTINCT user_message_id) FROM message_embeddings"), corpus.eligible);
  EXPECT_EQ(scalar("SELECT count(*) FROM embedding_failures"), 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM embedding_claims WHERE expires_at > now()"), 0);
}

}  // namespace
