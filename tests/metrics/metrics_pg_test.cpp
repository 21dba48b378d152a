// /healthz of a `run --follow` on PostgreSQL while its server is down (issue 15, item 1):
// 503 "database lost" while the run's database calls are being retried, 200 again once
// the server is back, and the run carries on (local-hash: no provider involved).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/core.h>

#include <chrono>
#include <regex>
#include <string>
#include <thread>

#include "support/http_get.h"
#include "support/pg.h"
#include "support/process.h"
#include "support/source_schema.h"
#include "support/sql.h"

namespace {

namespace test = lens::test;
using namespace std::chrono_literals;

using test::http_get;

TEST(MetricsPg, HealthSaysDatabaseLostWhileTheServerIsDown) {
  test::TempDir dir("metrics_pg");
  // Its own server: stopping it would disturb the other tests' shared one.
  auto server = test::PgServer::start(dir / "pg.env");
  ASSERT_TRUE(server && server->ok()) << (server ? server->error() : "no server");
  test::PgScratch schema(*server, "metrics");
  ASSERT_TRUE(schema.ok()) << schema.error();
  auto db = test::Db::open(schema.url());
  ASSERT_TRUE(db);
  ASSERT_EQ(test::create_source_schema(*db), "");
  constexpr int k_messages = 200;
  ASSERT_EQ(db->exec(fmt::format(
                "INSERT INTO conversations (id, user_id, created_at) SELECT "
                "('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, gen_random_uuid(), now() FROM "
                "generate_series(1, {0}) g; "
                "INSERT INTO messages (id, conversation_id, role, content, created_at) SELECT "
                "('00000000-0000-4000-a000-' || lpad(g::text, 12, '0'))::uuid, "
                "('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, 'user', "
                "'question number ' || g, '2024-01-01'::timestamptz + g * interval '1 second' "
                "FROM generate_series(1, {0}) g",
                k_messages)),
            "");
  auto init = test::run_lens({"init", "--db", schema.url()}, dir.path());
  ASSERT_EQ(init.exit_code, 0) << init.err;

  test::SpawnOptions so;
  so.cwd = dir.path();
  so.out_path = dir / "run.out";
  so.err_path = dir / "run.err";
  const pid_t pid = test::spawn_lens(
      {"run", "--db", schema.url(), "--provider", "local-hash", "--follow", "--metrics-addr", "127.0.0.1:0"},
      so);
  ASSERT_GT(pid, 0);
  auto err = [&] { return test::slurp(dir / "run.err"); };
  int port = 0;
  const std::regex announced(R"(metrics: serving http://127\.0\.0\.1:(\d+)/metrics)");
  bool ok = test::wait_until(
      [&] {
        std::smatch m;
        const std::string e = err();
        if (!std::regex_search(e, m, announced)) return false;
        port = std::stoi(m[1]);
        return true;
      },
      60s);
  ok = ok && test::wait_until(
                 [&] {
                   return db->scalar("SELECT count(*) FROM message_embeddings").value_or("") ==
                          std::to_string(k_messages);
                 },
                 120s);
  if (!ok) {
    test::kill_and_wait(pid, SIGKILL);
    dir.keep();
    FAIL() << "the run did not catch up:\n" << err();
  }
  EXPECT_EQ(http_get(port, "/healthz").status, 200);

  // Down for 8 s: the idle run's next pass (every 2 s) meets it and retries.
  std::thread restart([&] { EXPECT_TRUE(server->restart(8)); });
  test::HttpAnswer health;
  const bool lost = test::wait_until(
      [&] {
        health = http_get(port, "/healthz");
        return health.status == 503;
      },
      30s, 50ms);
  const std::string during = http_get(port, "/metrics").body;
  restart.join();
  EXPECT_TRUE(lost) << health.status << " " << health.body << "\n" << err();
  EXPECT_EQ(health.body, "unhealthy: database lost\n");
  EXPECT_NE(during.find("\nlens_embed_database_lost 1\n"), std::string::npos) << during;

  const bool back = test::wait_until(
      [&] {
        health = http_get(port, "/healthz");
        return health.status == 200;
      },
      60s);
  EXPECT_TRUE(back) << health.status << " " << health.body << "\n" << err();
  EXPECT_NE(http_get(port, "/metrics").body.find("\nlens_embed_database_lost 0\n"), std::string::npos);

  // The run carries on: a new message is embedded.
  // (Our own client reconnects on a read, not on a write.)
  ASSERT_TRUE(db->scalar("SELECT 1")) << db->last_error();
  ASSERT_EQ(db->exec("INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES "
                     "('00000000-0000-4000-a000-999999999999', '00000000-0000-4000-8000-000000000001', "
                     "'user', 'asked after the restart', now())"),
            "");
  EXPECT_TRUE(test::wait_until(
      [&] {
        return db->scalar("SELECT count(*) FROM message_embeddings").value_or("") ==
               std::to_string(k_messages + 1);
      },
      60s))
      << err();
  EXPECT_EQ(test::kill_and_wait(pid, SIGTERM), 0) << err();
  if (HasFailure()) dir.keep();
}

}  // namespace
