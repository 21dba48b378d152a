// `run --metrics-addr` through the real binary against the stand-in (issue 15, item 1):
// /metrics scraped during a --follow run adds up to the run's own summary and to the
// database, and passes the real `promtool check metrics`; /healthz says 503 while the
// provider's circuit is open and 200 once it answers again; a real Prometheus server
// scrapes the endpoint; a bad address (flag, variable or file) and a port in use are
// exit 2 naming the setting, before the database is touched.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "support/http_get.h"
#include "support/paths.h"
#include "support/process.h"
#include "support/sql.h"
#include "support/stand_in.h"

namespace {

namespace test = lens::test;
using namespace std::chrono_literals;

constexpr const char* k_key = "sk-metrics-test-key-0000";

using test::http_get;

// The samples of an exposition: "name{labels}" as rendered -> value.
using Samples = std::map<std::string, double>;
Samples parse_samples(const std::string& text) {
  Samples out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    if (space == std::string::npos) continue;
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}
// The sum of every series of `name` (labels or not), -1 when there is none.
double total(const Samples& s, const std::string& name) {
  double sum = 0;
  bool any = false;
  for (const auto& [series, v] : s)
    if (series == name || series.rfind(name + "{", 0) == 0) {
      sum += v;
      any = true;
    }
  return any ? sum : -1;
}
double value(const Samples& s, const std::string& series) {
  const auto it = s.find(series);
  return it == s.end() ? -1 : it->second;
}

// A port nothing listens on now (bound, read, released). Another process could take it
// before the caller does; on this machine ports come from the ephemeral range at random.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0)
    port = ntohs(sa.sin_port);
  ::close(fd);
  return port;
}

class MetricsE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = dir_ / "lens.db";
    const auto r =
        test::run({test::sample_corpus_binary(), "--sqlite", db_, "--conversations", "40"}, dir_.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    sql_ = test::Db::open("sqlite:" + db_);
    ASSERT_TRUE(sql_);
    // Two inputs the stand-in refuses as too long (a permanent failure each).
    ASSERT_EQ(sql_->exec("UPDATE messages SET content = content || ' POISON' WHERE id IN (SELECT id FROM "
                         "messages WHERE role = 'user' AND trim(content) <> '' ORDER BY id LIMIT 2)"),
              "");
    eligible_ = count(
        "SELECT count(*) FROM messages WHERE role = 'user' AND content IS NOT NULL AND "
        "trim(content, ' ' || char(9, 10, 11, 12, 13)) <> ''");
    ASSERT_GT(eligible_, 50);
  }
  void TearDown() override {
    if (pid_ > 0) test::kill_and_wait(pid_, SIGKILL);
    if (HasFailure()) dir_.keep();
  }

  long long count(const std::string& sql) {
    const auto v = sql_->scalar(sql);
    EXPECT_TRUE(v) << sql_->last_error() << "\n" << sql;
    return v && !v->empty() ? std::stoll(*v) : -1;
  }
  // Rows plus failures other than empty_input (the blank ones are not in eligible_).
  long long done() {
    const auto rows = sql_->scalar("SELECT count(*) FROM message_embeddings");
    const auto failed = sql_->scalar("SELECT count(*) FROM embedding_failures WHERE reason <> 'empty_input'");
    return rows && failed ? std::stoll(*rows) + std::stoll(*failed) : -1;
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
            "--batch-size",
            "8",
            "--follow",
            "--json",
            "--timeout",
            "5",
            "--metrics-addr",
            "127.0.0.1:0"};
  }
  // Starts `run --follow` with the endpoint on a port of the system's choice and reads
  // that port from the log line that announces it.
  void start(const std::vector<std::string>& args) {
    test::SpawnOptions so;
    so.cwd = dir_.path();
    so.out_path = dir_ / "run.out";
    so.err_path = dir_ / "run.err";
    so.env = {{"SUPERMIND_API_KEY", k_key}};
    pid_ = test::spawn_lens(args, so);
    ASSERT_GT(pid_, 0);
    const std::regex announced(R"(metrics: serving http://127\.0\.0\.1:(\d+)/metrics)");
    std::smatch m;
    ASSERT_TRUE(test::wait_until(
        [&] {
          const std::string e = err();
          if (!std::regex_search(e, m, announced)) return false;
          port_ = std::stoi(m[1]);
          return true;
        },
        60s))
        << err();
  }
  std::string err() const { return test::slurp(dir_ / "run.err"); }
  std::string scrape() const {
    const auto a = http_get(port_, "/metrics");
    EXPECT_EQ(a.status, 200) << a.body;
    return a.body;
  }
  // Stops the --follow run with SIGTERM: its exit code and its --json summary.
  nlohmann::json stop(int expected_exit) {
    const int code = test::kill_and_wait(pid_, SIGTERM);
    pid_ = -1;
    EXPECT_EQ(code, expected_exit) << err();
    const std::string out = test::slurp(dir_ / "run.out");
    const auto last = out.find_last_of('{', out.rfind("\"stats\""));
    EXPECT_NE(last, std::string::npos) << out;
    if (last == std::string::npos) return {};
    // The summary is the last line of stdout.
    const auto line_start = out.rfind('\n', last);
    return nlohmann::json::parse(out.substr(line_start == std::string::npos ? 0 : line_start + 1), nullptr,
                                 false);
  }
  // `promtool check metrics` (the Debian package prometheus) on an exposition: "" when it
  // passes, else what promtool said.
  std::string promtool(const std::string& exposition, const std::string& name) {
    const std::string path = dir_ / (name + ".prom");
    std::ofstream(path) << exposition;
    const auto r = test::run({"sh", "-c", "promtool check metrics < '" + path + "'"}, dir_.path());
    if (r.exit_code == 0 && r.out.empty() && r.err.empty()) return "";
    return fmt::format("promtool exit {}: {}{}", r.exit_code, r.out, r.err);
  }

  static lens::stand_in::StandInOptions provider_options() {
    lens::stand_in::StandInOptions o;
    o.api_key = k_key;
    o.default_dimensions = 16;
    o.reject_marker = "POISON";
    return o;
  }

  test::TempDir dir_{"metrics"};
  std::string db_;
  std::unique_ptr<test::Db> sql_;
  long long eligible_ = 0;
  pid_t pid_ = -1;
  int port_ = 0;
};

TEST_F(MetricsE2E, ScrapesAddUpToTheRunSummary) {
  auto o = provider_options();
  o.p_500 = 1;  // exactly 3 answers of 500 in all: 3 retries, none running out of attempts
  o.fault_limit = 3;
  o.latency_ms = 5;
  test::StandIn provider(o);
  ASSERT_TRUE(provider.ok());
  start(run_args(provider.base_url()));

  // During the run: healthy, and a valid exposition whatever it holds yet.
  const auto first = scrape();
  EXPECT_EQ(promtool(first, "first"), "");
  const auto health = http_get(port_, "/healthz");
  EXPECT_EQ(health.status, 200) << health.body;

  // The counters reach what the database holds, then the run catches up (nothing pending).
  Samples s;
  ASSERT_TRUE(test::wait_until(
      [&] {
        s = parse_samples(scrape());
        return done() == eligible_ &&
               total(s, "lens_embed_exchanges_embedded_total") ==
                   static_cast<double>(count("SELECT count(*) FROM message_embeddings")) &&
               value(s, "lens_embed_pending_exchanges") == 0 &&
               value(s, "lens_embed_oldest_pending_age_seconds") == 0;
      },
      120s, 100ms))
      << err() << "\n"
      << scrape();
  const std::string last = scrape();
  s = parse_samples(last);
  EXPECT_EQ(promtool(last, "last"), "");
  const auto summary = stop(0);
  ASSERT_TRUE(summary.is_object()) << test::slurp(dir_ / "run.out");
  const auto& st = summary["stats"];

  EXPECT_EQ(total(s, "lens_embed_exchanges_embedded_total"), st["embedded"].get<double>());
  EXPECT_EQ(total(s, "lens_embed_exchanges_unchanged_total"), st["unchanged"].get<double>());
  EXPECT_EQ(total(s, "lens_embed_failures_total"), st["failed"].get<double>());
  EXPECT_EQ(total(s, "lens_embed_tokens_total"), st["tokens"].get<double>());
  EXPECT_EQ(total(s, "lens_embed_requests_total"), st["requests"].get<double>());
  EXPECT_EQ(total(s, "lens_embed_retries_total"), st["retries"].get<double>());
  EXPECT_EQ(total(s, "lens_embed_rate_limited_total"), st["rate_limited"].get<double>());
  EXPECT_EQ(value(s, "lens_embed_request_duration_seconds_count"), st["requests"].get<double>());
  // ... and to the database and the stand-in.
  EXPECT_EQ(total(s, "lens_embed_exchanges_embedded_total"),
            static_cast<double>(count("SELECT count(*) FROM message_embeddings")));
  for (const char* reason : {"context_length", "empty_input"})
    EXPECT_EQ(value(s, fmt::format(R"(lens_embed_failures_total{{reason="{}",class="permanent"}})", reason)),
              static_cast<double>(
                  count(fmt::format("SELECT count(*) FROM embedding_failures WHERE reason = '{}'", reason))))
        << reason;
  EXPECT_EQ(value(s, R"(lens_embed_failures_total{reason="context_length",class="permanent"})"), 2);
  EXPECT_EQ(total(s, "lens_embed_requests_total"), static_cast<double>(provider.stat("requests")));
  EXPECT_EQ(value(s, R"(lens_embed_requests_total{code="500"})"), 3);
  EXPECT_EQ(value(s, R"(lens_embed_requests_total{code="200"})"),
            static_cast<double>(provider.stat("ok_requests")));
  EXPECT_EQ(total(s, "lens_embed_retries_total"), 3);
  EXPECT_EQ(value(s, "lens_embed_provider_circuit_open"), 0);
  EXPECT_EQ(total(s, "lens_embed_circuit_breaker_trips_total"), 0);
  EXPECT_EQ(value(s, "lens_embed_database_lost"), 0);
  EXPECT_EQ(value(s, "lens_embed_in_flight_requests"), 0);
  EXPECT_GT(total(s, "lens_embed_cost_usd_total"), 0);
  // No label or value carries the key.
  EXPECT_EQ(last.find(k_key), std::string::npos);
}

TEST_F(MetricsE2E, HealthIsUnavailableWhileTheProviderIsDown) {
  test::StandIn provider(provider_options());
  ASSERT_TRUE(provider.ok());
  provider.set_outage(503);
  auto args = run_args(provider.base_url());
  args.insert(args.end(), {"--unavailable-after", "1"});
  start(args);

  test::HttpAnswer health;
  ASSERT_TRUE(test::wait_until(
      [&] {
        health = http_get(port_, "/healthz");
        return health.status == 503;
      },
      120s))
      << health.status << " " << health.body << "\n"
      << err();
  EXPECT_EQ(health.body, "unhealthy: provider circuit open\n");
  auto s = parse_samples(scrape());
  EXPECT_EQ(value(s, "lens_embed_provider_circuit_open"), 1);
  EXPECT_EQ(total(s, "lens_embed_circuit_breaker_trips_total"), 1);
  EXPECT_GE(value(s, R"(lens_embed_requests_total{code="503"})"), 3);
  double blamed = 0;  // failures other than blank inputs (which are not the provider's)
  for (const auto& [series, v] : s)
    if (series.rfind("lens_embed_failures_total{", 0) == 0 && series.find("empty_input") == std::string::npos)
      blamed += v;
  EXPECT_EQ(blamed, 0) << "an outage blamed on the inputs";
  EXPECT_EQ(count("SELECT count(*) FROM embedding_failures WHERE reason <> 'empty_input'"), 0);

  provider.set_outage(0);
  ASSERT_TRUE(test::wait_until(
      [&] {
        health = http_get(port_, "/healthz");
        return health.status == 200;
      },
      120s))
      << health.status << " " << health.body << "\n"
      << err();
  EXPECT_EQ(health.body, "ok\n");
  ASSERT_TRUE(test::wait_until([&] { return done() == eligible_; }, 120s)) << err();
  ASSERT_TRUE(test::wait_until(
      [&] {
        s = parse_samples(scrape());
        return total(s, "lens_embed_exchanges_embedded_total") ==
               static_cast<double>(count("SELECT count(*) FROM message_embeddings"));
      },
      30s));
  EXPECT_EQ(value(s, "lens_embed_provider_circuit_open"), 0);
  EXPECT_EQ(total(s, "lens_embed_circuit_breaker_trips_total"), 1);
  const auto summary = stop(0);
  ASSERT_TRUE(summary.is_object());
  EXPECT_EQ(total(s, "lens_embed_requests_total"), summary["stats"]["requests"].get<double>());
}

// A real Prometheus server (Debian package prometheus) scrapes the endpoint every second;
// its query API answers with the run's embedded count.
TEST_F(MetricsE2E, PrometheusScrapesTheEndpoint) {
  test::StandIn provider(provider_options());
  ASSERT_TRUE(provider.ok());
  start(run_args(provider.base_url()));
  ASSERT_TRUE(test::wait_until([&] { return done() == eligible_; }, 120s)) << err();
  const long long rows = count("SELECT count(*) FROM message_embeddings");
  ASSERT_TRUE(test::wait_until(
      [&] { return total(parse_samples(scrape()), "lens_embed_exchanges_embedded_total") == rows; }, 30s));

  const std::string config = dir_ / "prometheus.yml";
  std::ofstream(config) << fmt::format(
      "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
      "scrape_configs:\n  - job_name: lens-embed\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
      port_);
  const int web = free_port();
  ASSERT_GT(web, 0);
  test::SpawnOptions so;
  so.cwd = dir_.path();
  so.out_path = dir_ / "prometheus.out";
  so.err_path = dir_ / "prometheus.err";
  const pid_t prometheus =
      test::spawn({"prometheus", "--config.file=" + config, "--storage.tsdb.path=" + (dir_ / "tsdb"),
                   fmt::format("--web.listen-address=127.0.0.1:{}", web)},
                  so);
  ASSERT_GT(prometheus, 0) << "prometheus is missing: scripts/install-deps.sh installs it";
  std::string answer;
  const bool scraped = test::wait_until(
      [&] {
        const auto a = http_get(web, "/api/v1/query?query=lens_embed_exchanges_embedded_total");
        answer = a.body;
        if (a.status != 200) return false;
        const auto j = nlohmann::json::parse(a.body, nullptr, false);
        if (!j.is_object() || j.value("status", "") != "success") return false;
        const auto& result = j["data"]["result"];
        return result.is_array() && result.size() == 1 &&
               result[0]["value"][1].get<std::string>() == std::to_string(rows) &&
               result[0]["metric"]["job"] == "lens-embed";
      },
      90s, 250ms);
  const auto up = http_get(web, "/api/v1/query?query=up");
  EXPECT_EQ(test::kill_and_wait(prometheus, SIGTERM), 0) << test::slurp(dir_ / "prometheus.err");
  EXPECT_TRUE(scraped) << answer << "\n" << test::slurp(dir_ / "prometheus.err");
  EXPECT_NE(up.body.find(R"("value":[)"), std::string::npos) << up.body;
  EXPECT_NE(up.body.find(R"(,"1"])"), std::string::npos) << "the target is not up: " << up.body;
  stop(0);
}

// Every way of giving a bad address is exit 2 naming the setting and where it came from;
// a port in use is exit 2 naming the flag, before lens-embed creates anything in the database.
TEST_F(MetricsE2E, BadAddressesAndBusyPortsAreConfigurationErrors) {
  const std::vector<std::string> base = {"run", "--db", "sqlite:" + db_, "--provider", "local-hash"};
  auto lens = [&](std::vector<std::string> extra, const test::Env& env = {}) {
    auto args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_lens(args, dir_.path(), env);
  };
  auto o = lens({"--metrics-addr", "localhost"});
  EXPECT_EQ(o.exit_code, 2) << o.err;
  EXPECT_NE(o.err.find("--metrics-addr localhost (from flag --metrics-addr)"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("HOST:PORT"), std::string::npos) << o.err;

  o = lens({}, {{"LENS_METRICS_ADDR", "127.0.0.1:70000"}});
  EXPECT_EQ(o.exit_code, 2) << o.err;
  EXPECT_NE(o.err.find("(from env LENS_METRICS_ADDR)"), std::string::npos) << o.err;

  std::ofstream(dir_ / "lens-embed.toml") << "[defaults]\nmetrics_addr = \":9464\"\n";
  o = lens({"--config", dir_ / "lens-embed.toml"});
  EXPECT_EQ(o.exit_code, 2) << o.err;
  EXPECT_NE(o.err.find("--metrics-addr :9464"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("lens-embed.toml:2"), std::string::npos) << o.err;

  // `config` shows where the setting comes from.
  const auto c =
      test::run_lens({"config", "--db", "sqlite:" + db_}, dir_.path(), {{"LENS_METRICS_ADDR", "9464"}});
  EXPECT_EQ(c.exit_code, 0) << c.err;
  EXPECT_TRUE(std::regex_search(c.out, std::regex(R"(metrics_addr\s+= 9464\s+\(env LENS_METRICS_ADDR\))")))
      << c.out;

  // A port another process holds (--metrics-listen is the same flag).
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  const int taken = ntohs(sa.sin_port);
  o = lens({"--metrics-listen", fmt::format("127.0.0.1:{}", taken)});
  ::close(fd);
  EXPECT_EQ(o.exit_code, 2) << o.err;
  EXPECT_NE(
      o.err.find(fmt::format("--metrics-addr: cannot listen on 127.0.0.1:{}: Address already in use", taken)),
      std::string::npos)
      << o.err;
  EXPECT_EQ(
      count("SELECT count(*) FROM sqlite_master WHERE name IN ('embedding_runs', 'message_embeddings')"), 0)
      << "the run touched the database before it knew it could serve its metrics";
  // The same run with a free port works.
  o = lens({"--metrics-addr", "127.0.0.1:0"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.err.find("metrics: serving http://127.0.0.1:"), std::string::npos) << o.err;
}

}  // namespace
