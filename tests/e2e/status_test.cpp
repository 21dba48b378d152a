// `status` through the binary on SQLite and PostgreSQL (issue 15, item 3; issue 16's
// fenced count): freshness equals the age of the oldest pending message the test planted,
// the last 24 hours' tokens and USD equal the runs made (an old run not counted, one that
// straddles the window counted in part), the cause of the last failed run, the live
// workers of PostgreSQL with their claims (gone once the worker is killed), the run's
// fenced count stored and shown, and a schema v2 database upgraded in place to v3.
#include <gtest/gtest.h>

#include <signal.h>

#include <fmt/core.h>
#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/pg.h"
#include "support/process.h"
#include "support/source_schema.h"
#include "support/sql.h"
#include "support/stand_in.h"
#include "v2_schema.h"

namespace {

namespace test = lens::test;
using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

constexpr const char* k_key = "sk-status-test-key-0000";
constexpr const char* k_provider = "supermind";
constexpr const char* k_model = "text-embedding-3-small";
constexpr double k_price = 0.02;  // the model table's USD per million tokens of k_model

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string uid(int n) {
  return fmt::format("00000000-0000-4000-a000-{:012}", n);
}
std::string aid(int n) {
  return fmt::format("00000000-0000-4000-b000-{:012}", n);
}

// ISO-8601 UTC with milliseconds, as both databases read it.
std::string iso(Clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", buf, ms % 1000);
}

class Status : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (pg()) {
      auto& server = test::PgServer::shared();
      ASSERT_TRUE(server.ok()) << server.error();
      scratch_ = std::make_unique<test::PgScratch>(server, "status");
      ASSERT_TRUE(scratch_->ok()) << scratch_->error();
      target_ = scratch_->url();
    } else {
      target_ = "sqlite:" + (dir_ / "lens.db");
    }
    db_ = test::Db::open(target_);
    ASSERT_TRUE(db_);
  }
  void TearDown() override {
    if (HasFailure()) dir_.keep();
  }
  bool pg() const { return GetParam() == "postgres"; }

  test::Output lens(const std::vector<std::string>& args) {
    return test::run_lens(args, dir_.path(), {{"SUPERMIND_API_KEY", k_key}});
  }
  std::vector<std::string> run_args(const std::string& base_url, std::vector<std::string> extra) const {
    std::vector<std::string> a = {"run", "--db", target_};
    for (auto& s : test::supermind_args(base_url, k_model))
      a.push_back(s);
    for (const char* s : {"--dimensions", "16", "--json"})
      a.emplace_back(s);
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  // A finished run's --json summary.
  json run_json(const test::StandIn& provider, std::vector<std::string> extra, int expected_exit = 0) {
    const auto o = lens(run_args(provider.base_url(), std::move(extra)));
    EXPECT_EQ(o.exit_code, expected_exit) << o.out << o.err;
    const auto j = json::parse(o.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << o.out;
    return j.is_discarded() ? json::object() : j;
  }
  json status_json() {
    const auto o = lens({"status", "--db", target_, "--json"});
    EXPECT_EQ(o.exit_code, 0) << o.err;
    const auto j = json::parse(o.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << o.out;
    return j.is_discarded() ? json::object() : j;
  }
  static json model_of(const json& status) {
    for (const auto& m : status.value("models", json::array()))
      if (m.value("provider", "") == k_provider && m.value("model", "") == k_model) return m;
    ADD_FAILURE() << "no " << k_model << " in " << status.dump();
    return json::object();
  }
  // A user message `n` at `created` with its answer a second later.
  void add_exchange(int n, Clock::time_point created) {
    const std::string conv = fmt::format("00000000-0000-4000-8000-{:012}", n);
    ASSERT_EQ(db_->insert({{uid(n), conv, "user", iso(created), "question number " + std::to_string(n)},
                           {aid(n), conv, "assistant", iso(created + 1s), "answer " + std::to_string(n)}}),
              "");
  }
  // SQL for the instant `hours` before now, in the database's own clock and format.
  std::string ago(int hours) const {
    return pg() ? fmt::format("now() - interval '{} hours'", hours)
                : fmt::format("strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-{} hours')", hours);
  }
  // A run of (k_provider, k_model) written straight into embedding_runs.
  void plant_run(int started_hours_ago, int finished_hours_ago, long long tokens) {
    ASSERT_EQ(db_->exec(fmt::format("INSERT INTO embedding_runs (provider, model, started_at, finished_at, "
                                    "heartbeat_at, status, tokens) VALUES ('{}', '{}', {}, {}, {}, "
                                    "'completed', {})",
                                    k_provider, k_model, ago(started_hours_ago), ago(finished_hours_ago),
                                    ago(finished_hours_ago), tokens)),
              "");
  }
  long long count(const std::string& sql) {
    const auto v = db_->scalar(sql);
    EXPECT_TRUE(v) << db_->last_error() << "\n" << sql;
    return v && !v->empty() ? std::stoll(*v) : -1;
  }
  static lens::stand_in::StandInOptions stand_in() {
    lens::stand_in::StandInOptions o;
    o.api_key = k_key;
    o.default_dimensions = 16;
    return o;
  }

  test::TempDir dir_{"status"};
  std::unique_ptr<test::PgScratch> scratch_;
  std::string target_;
  std::unique_ptr<test::Db> db_;
};

TEST_P(Status, FreshnessSpendingAndTheLastFailure) {
  ASSERT_EQ(test::create_source_schema(*db_), "");
  const auto base = Clock::now();
  for (int n = 1; n <= 4; ++n)  // 5, 4, 3 and 2 hours old
    add_exchange(n, base - std::chrono::hours(6 - n));
  test::StandIn provider(stand_in());
  ASSERT_TRUE(provider.ok());
  const auto first = run_json(provider, {"--limit", "2"});
  const auto second = run_json(provider, {"--limit", "1"});
  ASSERT_EQ(first["stats"]["embedded"], 2) << first.dump();
  ASSERT_EQ(second["stats"]["embedded"], 1) << second.dump();
  const long long tokens =
      first["stats"]["tokens"].get<long long>() + second["stats"]["tokens"].get<long long>();
  ASSERT_GT(tokens, 0);

  auto s = status_json();
  auto m = model_of(s);
  EXPECT_EQ(m["pending"], 1);
  // Message 4 (2 hours old at `base`) is the one left; its age is measured later than
  // `base` by at most the time the test has taken since.
  ASSERT_TRUE(m["oldest_pending_age_seconds"].is_number()) << m.dump();
  const double elapsed = std::chrono::duration<double>(Clock::now() - base).count();
  const double age = m["oldest_pending_age_seconds"].get<double>();
  EXPECT_GE(age, 7200.0 - 1.0) << m.dump();
  EXPECT_LE(age, 7200.0 + elapsed + 1.0) << m.dump();
  EXPECT_TRUE(contains(m["oldest_pending_at"].get<std::string>(), iso(base - 2h).substr(0, 16))) << m.dump();
  EXPECT_EQ(m["last_24h"]["runs"], 2);
  EXPECT_EQ(m["last_24h"]["tokens"], tokens);
  EXPECT_EQ(m["last_24h"]["prorated_runs"], 0);
  EXPECT_DOUBLE_EQ(m["last_24h"]["usd_per_million_tokens"].get<double>(), k_price);
  EXPECT_NEAR(m["last_24h"]["usd"].get<double>(), static_cast<double>(tokens) * k_price / 1e6, 1e-12);
  EXPECT_TRUE(m["last_failed_run"].is_null()) << m.dump();
  EXPECT_EQ(s["workers"].is_array(), pg()) << s.dump();

  // A run two days ago is outside the window; one from 36 to 12 hours ago counts for the
  // half of its span inside it (500 of 1000 tokens, less what the seconds since cost).
  plant_run(72, 48, 1'000'000);
  plant_run(36, 12, 1000);
  m = model_of(status_json());
  EXPECT_EQ(m["last_24h"]["runs"], 3) << m.dump();
  EXPECT_EQ(m["last_24h"]["prorated_runs"], 1) << m.dump();
  const long long with_part = m["last_24h"]["tokens"].get<long long>();
  EXPECT_GE(with_part, tokens + 499) << m.dump();
  EXPECT_LE(with_part, tokens + 500) << m.dump();

  // A provider that refuses connections: the run fails, and status names why.
  const auto refused =
      lens(run_args("http://127.0.0.1:1/v1", {"--unavailable-after", "1", "--timeout", "2"}));
  ASSERT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  const long long failed_id = count("SELECT max(id) FROM embedding_runs WHERE status = 'failed'");
  ASSERT_GT(failed_id, 0);
  m = model_of(status_json());
  ASSERT_TRUE(m["last_failed_run"].is_object()) << m.dump();
  EXPECT_EQ(m["last_failed_run"]["id"], failed_id);
  EXPECT_EQ(m["last_failed_run"]["status"], "failed");
  EXPECT_TRUE(contains(m["last_failed_run"].value("error", ""), "provider unavailable: cannot connect"))
      << m.dump();
  EXPECT_EQ(m["last_24h"]["runs"], 4) << "the failed run is a run of the window, with no tokens";
  // The straddling run's share shrinks as the window moves on: by under a token a minute.
  EXPECT_NEAR(m["last_24h"]["tokens"].get<double>(), static_cast<double>(with_part), 1.0) << m.dump();
  EXPECT_EQ(m["pending"], 1) << "an outage is not blamed on the message";

  const auto text = lens({"status", "--db", target_});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_TRUE(contains(text.out, "freshness: the oldest pending message is from ")) << text.out;
  EXPECT_TRUE(contains(text.out, "last 24 h: 4 run(s), ")) << text.out;
  EXPECT_TRUE(contains(text.out, "at the model table's $0.02 per million tokens")) << text.out;
  EXPECT_TRUE(contains(text.out, fmt::format("last failed run: #{} ended ", failed_id))) << text.out;
  EXPECT_TRUE(contains(text.out, "provider unavailable: cannot connect")) << text.out;
  EXPECT_EQ(contains(text.out, "workers (claims on PostgreSQL):"), pg()) << text.out;

  // Caught up: nothing pending, no age.
  (void)run_json(provider, {});
  m = model_of(status_json());
  EXPECT_EQ(m["pending"], 0);
  EXPECT_TRUE(m["oldest_pending_at"].is_null()) << m.dump();
  EXPECT_TRUE(m["oldest_pending_age_seconds"].is_null()) << m.dump();
  EXPECT_TRUE(contains(lens({"status", "--db", target_}).out, "freshness: up to date (nothing pending)"));
}

// A late write refused by the fence (a stored row of a newer version than the message's)
// is counted in the run's --json, stored in embedding_runs.fenced, and shown by status.
TEST_P(Status, TheFencedCountIsStoredWithTheRun) {
  ASSERT_EQ(test::create_source_schema(*db_), "");
  for (int n = 1; n <= 3; ++n)
    add_exchange(n, Clock::now() - std::chrono::hours(n));
  test::StandIn provider(stand_in());
  ASSERT_TRUE(provider.ok());
  const auto first = run_json(provider, {});
  ASSERT_EQ(first["stats"]["embedded"], 3) << first.dump();
  EXPECT_EQ(first["stats"]["fenced"], 0);
  // Row 1 now claims a version from the future: it looks stale, and writing over it is late.
  ASSERT_EQ(db_->exec(fmt::format("UPDATE message_embeddings SET source_version = '{}' WHERE "
                                  "user_message_id = '{}'",
                                  pg() ? "2099-01-01 00:00:00+00" : "2099-01-01T00:00:00.000Z", uid(1))),
            "");
  const auto fenced_run = run_json(provider, {});
  const long long fenced = fenced_run["stats"]["fenced"].get<long long>();
  EXPECT_EQ(fenced, 1) << fenced_run.dump();
  const long long run_id = fenced_run["run_id"].get<long long>();
  EXPECT_EQ(count(fmt::format("SELECT fenced FROM embedding_runs WHERE id = {}", run_id)), fenced);
  EXPECT_EQ(
      count(fmt::format("SELECT fenced FROM embedding_runs WHERE id = {}", first["run_id"].get<long long>())),
      0);
  const auto s = status_json();
  ASSERT_FALSE(s["recent_runs"].empty());
  EXPECT_EQ(s["recent_runs"][0]["id"], run_id);
  EXPECT_EQ(s["recent_runs"][0]["stats"]["fenced"], fenced);
  const auto text = lens({"status", "--db", target_});
  EXPECT_TRUE(contains(text.out, fmt::format("fenced {}", fenced))) << text.out;
}

// A database lens-embed v2 made: status (read-only) asks for `init`, which upgrades it in
// place; the runs recorded under v2 keep their counters and read fenced 0.
TEST_P(Status, AVersion2DatabaseIsUpgradedInPlace) {
  ASSERT_EQ(test::create_source_schema(*db_), "");
  ASSERT_EQ(db_->exec(pg() ? test::k_postgres_v2 : test::k_sqlite_v2), "");
  ASSERT_EQ(
      db_->exec(fmt::format("INSERT INTO embedding_runs (provider, model, status, tokens, error) VALUES "
                            "('{}', '{}', 'failed', 77, 'provider unavailable: under v2')",
                            k_provider, k_model)),
      "");
  add_exchange(1, Clock::now() - 1h);

  const auto before = lens({"status", "--db", target_});
  EXPECT_EQ(before.exit_code, 2) << before.out << before.err;
  EXPECT_TRUE(contains(before.err, "schema version 2")) << before.err;
  EXPECT_TRUE(contains(before.err, "lens-embed init")) << before.err;

  const auto init = lens({"init", "--db", target_});
  ASSERT_EQ(init.exit_code, 0) << init.err;
  EXPECT_EQ(count("SELECT count(*) FROM lens_embed_schema_migrations WHERE version IN (1, 2, 3)"), 3);
  EXPECT_EQ(count("SELECT fenced FROM embedding_runs"), 0);
  EXPECT_EQ(count("SELECT tokens FROM embedding_runs"), 77);
  const auto again = lens({"init", "--db", target_});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(count("SELECT count(*) FROM lens_embed_schema_migrations WHERE version = 3"), 1);

  auto s = status_json();
  ASSERT_EQ(s["recent_runs"].size(), 1u) << s.dump();
  EXPECT_EQ(s["recent_runs"][0]["stats"]["tokens"], 77);
  EXPECT_EQ(s["recent_runs"][0]["stats"]["fenced"], 0);
  EXPECT_EQ(model_of(s)["last_failed_run"].value("error", ""), "provider unavailable: under v2");

  test::StandIn provider(stand_in());
  ASSERT_TRUE(provider.ok());
  const auto run = run_json(provider, {});
  EXPECT_EQ(run["stats"]["embedded"], 1) << run.dump();
  EXPECT_EQ(model_of(status_json())["embedded"], 1);
}

INSTANTIATE_TEST_SUITE_P(Backends, Status, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

// SQLite: status is read-only and does not take the writer lock: it answers while a
// `run --follow` holds the file, and shows that run as running.
TEST(StatusSqlite, AnswersWhileARunHoldsTheWriterLock) {
  test::TempDir dir("status_lock");
  const std::string target = "sqlite:" + (dir / "lens.db");
  auto db = test::Db::open(target);
  ASSERT_TRUE(db);
  ASSERT_EQ(test::create_source_schema(*db), "");
  ASSERT_EQ(db->insert({{uid(1), "00000000-0000-4000-8000-000000000001", "user", iso(Clock::now() - 1h),
                         "question"}}),
            "");
  test::SpawnOptions so;
  so.cwd = dir.path();
  so.err_path = dir / "holder.err";
  const pid_t holder =
      test::spawn_lens({"run", "--db", target, "--provider", "local-hash", "--follow", "--quiet"}, so);
  ASSERT_GT(holder, 0);
  const bool holding = test::wait_until(
      [&] {
        return contains(test::slurp(dir / "lens.db.lens-embed.lock"), std::to_string(holder)) &&
               db->scalar("SELECT count(*) FROM message_embeddings").value_or("") == "1";
      },
      60s);
  const std::string lock_before = test::slurp(dir / "lens.db.lens-embed.lock");
  const auto o = test::run_lens({"status", "--db", target, "--json"}, dir.path(), {}, 30s);
  const std::string lock_after = test::slurp(dir / "lens.db.lens-embed.lock");
  EXPECT_EQ(test::kill_and_wait(holder, SIGTERM), 0) << test::slurp(dir / "holder.err");
  ASSERT_TRUE(holding) << test::slurp(dir / "holder.err");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(lock_after, lock_before) << "status wrote the lock file";
  const auto j = json::parse(o.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << o.out;
  ASSERT_EQ(j["recent_runs"].size(), 1u) << o.out;
  EXPECT_EQ(j["recent_runs"][0]["status"], "running");
  EXPECT_TRUE(j["workers"].is_null());
}

// PostgreSQL: a `run --follow` worker that holds claims (its requests are slow) is listed
// with its pid and claims; once it is killed (its session, and so its lock, gone) it is not.
TEST(StatusWorkers, ALiveWorkerIsListedWithItsClaimsAndGoneOnceKilled) {
  test::TempDir dir("status_workers");
  auto& server = test::PgServer::shared();
  ASSERT_TRUE(server.ok()) << server.error();
  test::PgScratch schema(server, "status_workers");
  ASSERT_TRUE(schema.ok()) << schema.error();
  auto db = test::Db::open(schema.url());
  ASSERT_TRUE(db);
  ASSERT_EQ(test::create_source_schema(*db), "");
  std::vector<test::Db::Message> messages;
  for (int n = 1; n <= 8; ++n) {
    const std::string conv = fmt::format("00000000-0000-4000-8000-{:012}", n);
    messages.push_back({uid(n), conv, "user", iso(Clock::now() - std::chrono::minutes(n)), "question"});
  }
  ASSERT_EQ(db->insert(messages), "");
  const test::Env env = {{"SUPERMIND_API_KEY", k_key}};
  const auto init = test::run_lens({"init", "--db", schema.url()}, dir.path(), env);
  ASSERT_EQ(init.exit_code, 0) << init.err;

  lens::stand_in::StandInOptions slow;
  slow.api_key = k_key;
  slow.default_dimensions = 16;
  slow.latency_ms = 60'000;  // every request outlasts the test's look at the worker
  test::StandIn provider(slow);
  ASSERT_TRUE(provider.ok());
  test::SpawnOptions so;
  so.cwd = dir.path();
  so.out_path = dir / "run.out";
  so.err_path = dir / "run.err";
  so.env = env;
  std::vector<std::string> args = {"run",       "--db", schema.url(),   "--follow",
                                   "--timeout", "120",  "--dimensions", "16"};
  for (auto& a : test::supermind_args(provider.base_url(), k_model))
    args.push_back(a);
  const pid_t pid = test::spawn_lens(args, so);
  ASSERT_GT(pid, 0);
  const std::string claims_of_pid =
      fmt::format("SELECT count(*) FROM embedding_claims WHERE worker LIKE '%:{}'", pid);
  const bool claimed =
      test::wait_until([&] { return db->scalar(claims_of_pid).value_or("0") != "0"; }, 60s, 50ms);
  if (!claimed) {
    test::kill_and_wait(pid, SIGKILL);
    FAIL() << "the worker never claimed: " << test::slurp(dir / "run.err");
  }
  auto status = [&] {
    const auto o = test::run_lens({"status", "--db", schema.url(), "--json"}, dir.path(), env);
    EXPECT_EQ(o.exit_code, 0) << o.err;
    const auto j = json::parse(o.out, nullptr, false);
    return j.is_discarded() ? json::object() : j;
  };
  const auto s = status();
  ASSERT_TRUE(s["workers"].is_array()) << s.dump();
  ASSERT_EQ(s["workers"].size(), 1u) << s.dump();
  const auto& w = s["workers"][0];
  EXPECT_EQ(w["pid"], pid) << w.dump();
  EXPECT_FALSE(w["host"].get<std::string>().empty());
  EXPECT_EQ(w["provider"], k_provider);
  EXPECT_EQ(w["model"], k_model);
  EXPECT_GE(w["claims"].get<long long>(), 1);
  EXPECT_FALSE(w["lease_expires_at"].get<std::string>().empty());
  EXPECT_EQ(w["lease_expired"], false);
  const auto text = test::run_lens({"status", "--db", schema.url()}, dir.path(), env);
  EXPECT_TRUE(contains(text.out, fmt::format("(pid {} on ", pid))) << text.out;

  EXPECT_EQ(test::kill_and_wait(pid, SIGKILL), 128 + SIGKILL);
  // The server ends the session when it sees the socket closed: the lock goes with it.
  json after;
  const bool gone = test::wait_until(
      [&] {
        after = status();
        return after["workers"].is_array() && after["workers"].empty();
      },
      30s, 200ms);
  EXPECT_TRUE(gone) << after.dump();
  EXPECT_GE(after.value("orphaned_claims", 0), 1) << after.dump();
  const auto text_after = test::run_lens({"status", "--db", schema.url()}, dir.path(), env);
  EXPECT_TRUE(contains(text_after.out, "no live worker holds claims")) << text_after.out;
  EXPECT_TRUE(contains(text_after.out, "left by workers that are gone")) << text_after.out;
  provider.stop();
}

}  // namespace
