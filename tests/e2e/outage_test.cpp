// A provider that is down, through the real binary (issue 11, item 2): refused, a name
// that does not resolve, TLS to a plain-HTTP port, 503 for everything. Each run stops
// within the documented bound (--unavailable-after plus at most one --timeout) with exit
// 1 and one line naming the cause and the setting; nothing is recorded against the
// exchanges; the run is recorded failed with its cause; the same run with the provider
// back embeds everything. Under --follow an outage in the middle is waited out: one run,
// nothing lost, nothing failed.
#include <gtest/gtest.h>

#include <signal.h>

#include <fmt/core.h>
#include <chrono>
#include <string>
#include <vector>

#include "support/paths.h"
#include "support/process.h"
#include "support/sql.h"
#include "support/stand_in.h"

namespace {

namespace test = lens::test;
using namespace std::chrono_literals;

constexpr const char* k_key = "sk-outage-test-key-0000";
constexpr int k_unavailable_after = 2;  // seconds: the breaker's setting for these runs
constexpr int k_timeout = 5;            // seconds: --timeout, the longest one request may take

class Outage : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = dir_ / "lens.db";
    const auto r =
        test::run({test::sample_corpus_binary(), "--sqlite", db_, "--conversations", "40"}, dir_.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    sql_ = test::Db::open("sqlite:" + db_);
    ASSERT_TRUE(sql_);
    // Exchanges a successful run embeds: eligible, and not blank by Unicode (those are
    // recorded as empty_input without being sent).
    eligible_ = count(
        "SELECT count(*) FROM messages WHERE role = 'user' AND content IS NOT NULL AND "
        "trim(content, ' ' || char(9, 10, 11, 12, 13)) <> ''");
    ASSERT_GT(eligible_, 50);
  }
  void TearDown() override {
    if (HasFailure()) dir_.keep();
  }

  long long count(const std::string& sql) {
    const auto v = sql_->scalar(sql);
    EXPECT_TRUE(v) << sql_->last_error() << "\n" << sql;
    return v && !v->empty() ? std::stoll(*v) : -1;
  }
  std::string text(const std::string& sql) { return sql_->scalar(sql).value_or("<error>"); }
  // Rows plus empty_input failures: what a complete run leaves; -1 while the tables are
  // not there yet (for waiting on another process).
  long long done() {
    const auto rows = sql_->scalar("SELECT count(*) FROM message_embeddings");
    const auto blank = sql_->scalar("SELECT count(*) FROM embedding_failures WHERE reason = 'empty_input'");
    return rows && blank ? std::stoll(*rows) + std::stoll(*blank) : -1;
  }

  std::vector<std::string> run_args(const std::string& base_url) const {
    return {"run",
            "--db",
            "sqlite:" + db_,
            "--provider",
            "supermind",
            "--base-url",
            base_url,
            "--model",
            "text-embedding-3-small",
            "--dimensions",
            "16",
            "--unavailable-after",
            std::to_string(k_unavailable_after),
            "--timeout",
            std::to_string(k_timeout),
            "--quiet"};
  }
  test::Output lens(const std::vector<std::string>& args) {
    return test::run_lens(args, dir_.path(), {{"SUPERMIND_API_KEY", k_key}});
  }

  // A run against `base_url`, which does not answer: exit 1 within the bound, the cause and
  // the setting named on stderr, nothing recorded against an exchange, the run failed.
  void expect_stops_cleanly(const std::string& base_url, const std::string& cause,
                            const std::string& setting) {
    const auto started = std::chrono::steady_clock::now();
    const auto o = lens(run_args(base_url));
    const auto took = std::chrono::steady_clock::now() - started;
    EXPECT_EQ(o.exit_code, 1) << o.out << o.err;
    // Documented bound: --unavailable-after, plus one --timeout when requests hang. The
    // margin is for starting the process on a loaded machine, not for the rule.
    EXPECT_LT(took, std::chrono::seconds(k_unavailable_after + k_timeout + 20))
        << std::chrono::duration<double>(took).count();
    EXPECT_GE(took, std::chrono::seconds(k_unavailable_after)) << "the breaker waited less than the setting";
    EXPECT_NE(o.err.find("provider unavailable: " + cause), std::string::npos) << o.err;
    EXPECT_NE(o.err.find(setting), std::string::npos) << o.err;
    EXPECT_EQ(o.err.find(k_key), std::string::npos);
    EXPECT_EQ(count("SELECT count(*) FROM message_embeddings"), 0);
    EXPECT_EQ(count("SELECT count(*) FROM embedding_failures WHERE reason <> 'empty_input'"), 0)
        << "an outage blamed on the inputs";
    EXPECT_EQ(text("SELECT status FROM embedding_runs ORDER BY id DESC LIMIT 1"), "failed");
    EXPECT_NE(text("SELECT error FROM embedding_runs ORDER BY id DESC LIMIT 1")
                  .find("provider unavailable: " + cause),
              std::string::npos);
    // status shows the cause of the last run.
    const auto status = lens({"status", "--db", "sqlite:" + db_});
    EXPECT_EQ(status.exit_code, 0) << status.err;
    EXPECT_NE(status.out.find("provider unavailable"), std::string::npos) << status.out;
  }

  // The same run with the provider answering: everything embedded, exit 0.
  void expect_recovers(const test::StandIn& provider) {
    const auto o = lens(run_args(provider.base_url()));
    EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
    EXPECT_EQ(count("SELECT count(*) FROM message_embeddings") +
                  count("SELECT count(*) FROM embedding_failures WHERE reason = 'empty_input'"),
              eligible_);
    EXPECT_EQ(count("SELECT count(*) FROM embedding_failures WHERE reason <> 'empty_input'"), 0);
    EXPECT_EQ(text("SELECT status FROM embedding_runs ORDER BY id DESC LIMIT 1"), "completed");
  }

  static lens::stand_in::StandInOptions healthy() {
    lens::stand_in::StandInOptions o;
    o.api_key = k_key;
    o.default_dimensions = 16;
    return o;
  }

  test::TempDir dir_{"outage"};
  std::string db_;
  std::unique_ptr<test::Db> sql_;
  long long eligible_ = 0;
};

TEST_F(Outage, ConnectionRefused) {
  expect_stops_cleanly("http://127.0.0.1:1/v1", "cannot connect", "--base-url / SUPERMIND_BASE_URL");
  test::StandIn provider(healthy());
  ASSERT_TRUE(provider.ok());
  expect_recovers(provider);
}

TEST_F(Outage, NameThatDoesNotResolve) {
  // .invalid never resolves (RFC 6761). Depending on the resolver it fails at once or when
  // --timeout ends the request: a cause named "cannot connect" or "timeout".
  const auto o = lens(run_args("http://lens-embed-outage-test.invalid/v1"));
  EXPECT_EQ(o.exit_code, 1) << o.err;
  EXPECT_TRUE(o.err.find("provider unavailable: cannot connect") != std::string::npos ||
              o.err.find("provider unavailable: timeout") != std::string::npos)
      << o.err;
  EXPECT_EQ(count("SELECT count(*) FROM embedding_failures WHERE reason <> 'empty_input'"), 0);
  EXPECT_EQ(text("SELECT status FROM embedding_runs ORDER BY id DESC LIMIT 1"), "failed");
  test::StandIn provider(healthy());
  ASSERT_TRUE(provider.ok());
  expect_recovers(provider);
}

TEST_F(Outage, TlsToAPlainHttpPort) {
  test::StandIn provider(healthy());
  ASSERT_TRUE(provider.ok());
  expect_stops_cleanly(fmt::format("https://127.0.0.1:{}/v1", provider.port()), "connection lost",
                       "--base-url / SUPERMIND_BASE_URL");
  EXPECT_EQ(provider.stat("ok_requests"), 0);
  expect_recovers(provider);
}

TEST_F(Outage, ServerErrorsForEverything) {
  test::StandIn provider(healthy());
  ASSERT_TRUE(provider.ok());
  provider.set_outage(503);
  expect_stops_cleanly(provider.base_url(), "HTTP 503", "--unavailable-after");
  EXPECT_GE(provider.stat("outage"), 3);
  provider.set_outage(0);
  expect_recovers(provider);
}

// The stand-in fails everything for a while in the middle of a --follow session. The
// outage lasts until the binary has said it waits, and a few seconds more (the point: it
// resumes by itself, whatever the length; a 60 s outage only costs CI time).
TEST_F(Outage, FollowWaitsOutAnOutageAsOneRun) {
  test::StandIn provider(healthy());
  ASSERT_TRUE(provider.ok());
  auto args = run_args(provider.base_url());
  args.erase(std::find(args.begin(), args.end(), "--quiet"));
  args.push_back("--follow");
  test::SpawnOptions so;
  so.cwd = dir_.path();
  so.out_path = dir_ / "follow.out";
  so.err_path = dir_ / "follow.err";
  so.env = {{"SUPERMIND_API_KEY", k_key}};
  const pid_t pid = test::spawn_lens(args, so);
  ASSERT_GT(pid, 0);
  auto embedded = [&] { return count("SELECT count(*) FROM message_embeddings"); };
  ASSERT_TRUE(test::wait_until([&] { return done() == eligible_; }, 120s))
      << test::slurp(dir_ / "follow.err");

  // The outage, and new messages arriving during it.
  provider.set_outage(503);
  ASSERT_EQ(
      sql_->exec("INSERT INTO messages (id, conversation_id, role, content, created_at) SELECT 'late-' || "
                 "id, conversation_id, 'user', 'a question asked during the outage ' || id, "
                 "'2031-01-01T00:00:00Z' FROM messages WHERE role = 'user' LIMIT 12"),
      "");
  const long long expected = eligible_ + 12;
  auto err = [&] { return test::slurp(dir_ / "follow.err"); };
  ASSERT_TRUE(test::wait_until([&] { return err().find("provider unavailable") != std::string::npos; }, 120s))
      << err();
  // While it waits: nothing recorded against the late exchanges, the run still running.
  const long long outage_answers = provider.stat("outage");
  ASSERT_TRUE(test::wait_until([&] { return provider.stat("outage") > outage_answers; }, 60s))
      << "no probe while waiting\n"
      << err();
  EXPECT_EQ(count("SELECT count(*) FROM embedding_failures WHERE reason <> 'empty_input'"), 0);
  EXPECT_EQ(text("SELECT status FROM embedding_runs"), "running");
  provider.set_outage(0);

  ASSERT_TRUE(test::wait_until([&] { return done() == expected; }, 120s)) << err();
  ASSERT_TRUE(test::wait_until([&] { return err().find("answers again") != std::string::npos; }, 10s))
      << err();
  EXPECT_EQ(test::kill_and_wait(pid, SIGTERM), 0) << err();

  EXPECT_EQ(count("SELECT count(*) FROM embedding_runs"), 1) << "--follow is one run";
  EXPECT_EQ(text("SELECT status FROM embedding_runs"), "completed");
  EXPECT_EQ(count("SELECT embedded FROM embedding_runs"), embedded());
  EXPECT_EQ(count("SELECT count(*) FROM embedding_failures WHERE reason <> 'empty_input'"), 0);
  // One log line per change of state, not one per attempt or probe.
  const std::string log = err();
  auto occurrences = [&](const std::string& what) {
    std::size_t n = 0;
    for (auto at = log.find(what); at != std::string::npos; at = log.find(what, at + 1))
      ++n;
    return n;
  };
  EXPECT_EQ(occurrences("provider unavailable"), 1u) << log;
  EXPECT_EQ(occurrences("answers again"), 1u) << log;
}

}  // namespace
