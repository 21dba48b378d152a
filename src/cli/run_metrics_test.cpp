// RunMetrics fed by hand, as the pipeline's observer feeds it: what /metrics renders adds up
// to what it was told, every metric lens-embed declares passes the real `promtool check
// metrics` (Debian package prometheus), and health follows the breaker and the database.
#include "cli/run_metrics.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <vector>

namespace lens::cli {
namespace {

// The samples of an exposition: "name{labels}" (as rendered) -> value.
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

struct Command {
  int exit_code = -1;
  std::string output;
};
// `command` through the shell with stdout and stderr captured together.
Command shell(const std::string& command) {
  Command c;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return c;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;)
    c.output.append(buf, n);
  const int status = ::pclose(p);
  c.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return c;
}

std::vector<core::Failure> failures(std::initializer_list<core::FailureReason> reasons) {
  std::vector<core::Failure> out;
  for (auto r : reasons)
    out.push_back(core::Failure{"u1", r, "detail that must not reach a label", "v1"});
  return out;
}

RunMetrics::Context context() {
  return RunMetrics::Context{"supermind", "text-embedding-3-small", "9.9.9", 0.02, true};
}

// Everything a run can report, once or more, the way the pipeline reports it.
void feed(RunMetrics& m) {
  m.on_request({200, false, std::chrono::milliseconds(12)});
  m.on_request({200, false, std::chrono::milliseconds(700)});
  m.on_request({500, false, std::chrono::milliseconds(3)});
  m.on_request({429, true, std::chrono::milliseconds(1)});
  m.on_request({0, false, std::chrono::seconds(121)});
  m.on_retry();
  m.on_retry();
  const auto first = failures({core::FailureReason::context_length, core::FailureReason::empty_input});
  m.on_commit({5, 1, 1'000'000, first});
  const auto second = failures({core::FailureReason::retries_exhausted});
  m.on_commit({2, 0, 500'000, second});
  m.on_provider_available(false);
  m.on_provider_available(true);
  EXPECT_TRUE(m.wants_pending_count());
  m.on_pending_count(20);
  EXPECT_FALSE(m.wants_pending_count())
      << "a second count within " << RunMetrics::k_pending_recount.count() << " s";
  m.on_commit({3, 0, 10, {}});
  m.on_oldest_pending(std::chrono::system_clock::now() - std::chrono::seconds(90));
  m.on_gauges({4, 8, 3000, 1'000'000, 11});
}

TEST(RunMetrics, WhatItRendersAddsUpToWhatItWasTold) {
  RunMetrics m(context());
  feed(m);
  const auto s = samples(m.registry().render());
  EXPECT_EQ(s.at("lens_embed_exchanges_embedded_total"), 10);
  EXPECT_EQ(s.at("lens_embed_exchanges_unchanged_total"), 1);
  EXPECT_EQ(s.at("lens_embed_tokens_total"), 1'500'010);
  EXPECT_NEAR(s.at("lens_embed_cost_usd_total"), 1.50001 * 0.02, 1e-12);
  EXPECT_EQ(s.at("lens_embed_retries_total"), 2);
  EXPECT_EQ(s.at("lens_embed_rate_limited_total"), 1);
  EXPECT_EQ(s.at("lens_embed_circuit_breaker_trips_total"), 1);
  EXPECT_EQ(s.at("lens_embed_provider_circuit_open"), 0);
  EXPECT_EQ(s.at("lens_embed_requests_total{code=\"200\"}"), 2);
  EXPECT_EQ(s.at("lens_embed_requests_total{code=\"500\"}"), 1);
  EXPECT_EQ(s.at("lens_embed_requests_total{code=\"429\"}"), 1);
  EXPECT_EQ(s.at("lens_embed_requests_total{code=\"0\"}"), 1);
  EXPECT_EQ(s.at("lens_embed_failures_total{reason=\"context_length\",class=\"permanent\"}"), 1);
  EXPECT_EQ(s.at("lens_embed_failures_total{reason=\"empty_input\",class=\"permanent\"}"), 1);
  EXPECT_EQ(s.at("lens_embed_failures_total{reason=\"retries_exhausted\",class=\"transient\"}"), 1);
  EXPECT_EQ(s.at("lens_embed_failures_total{reason=\"store_rejected\",class=\"permanent\"}"), 0)
      << "every reason is there from zero";
  // 20 counted, then 3 handled.
  EXPECT_EQ(s.at("lens_embed_pending_exchanges"), 17);
  EXPECT_GE(s.at("lens_embed_oldest_pending_age_seconds"), 90);
  EXPECT_LT(s.at("lens_embed_oldest_pending_age_seconds"), 90 + 60);
  EXPECT_EQ(s.at("lens_embed_in_flight_requests"), 4);
  EXPECT_EQ(s.at("lens_embed_concurrency_limit"), 8);
  EXPECT_EQ(s.at("lens_embed_rate_limit_requests_per_minute"), 3000);
  EXPECT_EQ(s.at("lens_embed_rate_limit_tokens_per_minute"), 1'000'000);
  EXPECT_EQ(s.at("lens_embed_claims_held"), 11);
  EXPECT_EQ(s.at("lens_embed_database_lost"), 0);
  EXPECT_EQ(s.at("lens_embed_request_duration_seconds_count"), 5);
  EXPECT_EQ(s.at("lens_embed_request_duration_seconds_bucket{le=\"+Inf\"}"), 5);
  EXPECT_EQ(
      s.at("lens_embed_info{provider=\"supermind\",model=\"text-embedding-3-small\",version=\"9.9.9\"}"), 1);
  // Caught up: the age goes back to 0.
  m.on_oldest_pending(std::nullopt);
  EXPECT_EQ(samples(m.registry().render()).at("lens_embed_oldest_pending_age_seconds"), 0);
}

TEST(RunMetrics, NoLabelCarriesAFailureDetail) {
  RunMetrics m(context());
  feed(m);
  EXPECT_EQ(m.registry().render().find("detail that must not"), std::string::npos);
}

TEST(RunMetrics, SqliteHasNoClaims) {
  auto c = context();
  c.claims = false;
  RunMetrics m(c);
  m.on_gauges({1, 1, 0, 0, 25});
  EXPECT_EQ(samples(m.registry().render()).at("lens_embed_claims_held"), 0);
}

// The real linter: names, types, HELP, units and suffixes as Prometheus wants them.
TEST(RunMetrics, EveryMetricPassesPromtool) {
  ASSERT_EQ(shell("command -v promtool").exit_code, 0)
      << "promtool is missing: scripts/install-deps.sh installs the Debian package prometheus";
  for (bool fed : {false, true}) {
    RunMetrics m(context());
    if (fed) feed(m);
    const auto path = std::filesystem::temp_directory_path() /
                      ("lens_run_metrics_" + std::to_string(::getpid()) + (fed ? "_fed" : "_new"));
    std::ofstream(path) << m.registry().render();
    const auto c = shell("promtool check metrics < " + path.string());
    EXPECT_EQ(c.exit_code, 0) << c.output;
    EXPECT_EQ(c.output, "") << c.output;
    std::filesystem::remove(path);
  }
}

// docs/OPERATIONS.md "Metrics and health" lists exactly the metrics /metrics declares.
TEST(RunMetrics, OperationsMdListsEveryMetricAndNoOther) {
  std::ifstream in(std::string(LENS_SOURCE_DIR) + "/docs/OPERATIONS.md");
  ASSERT_TRUE(in) << "docs/OPERATIONS.md";
  std::set<std::string> documented;
  const std::regex row(R"(^\| `(lens_embed_[a-z_]+)[{`])");
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, row)) documented.insert(m[1]);
  }
  std::set<std::string> declared;
  std::istringstream rendered(RunMetrics(context()).registry().render());
  for (std::string line; std::getline(rendered, line);)
    if (line.rfind("# TYPE ", 0) == 0) declared.insert(line.substr(7, line.find(' ', 7) - 7));
  EXPECT_GE(declared.size(), 20u);
  EXPECT_EQ(documented, declared);
}

TEST(RunMetrics, UnhealthyWhileTheCircuitIsOpenOrTheDatabaseIsLost) {
  RunMetrics m(context());
  EXPECT_EQ(m.unhealthy(), std::nullopt);
  m.on_provider_available(false);
  EXPECT_EQ(m.unhealthy(), "provider circuit open");
  m.on_provider_available(true);
  EXPECT_EQ(m.unhealthy(), std::nullopt);
  // Two calls lost at once (the reader and the writer); one comes back: still lost.
  m.on_database_lost();
  m.on_database_lost();
  EXPECT_EQ(m.unhealthy(), "database lost");
  EXPECT_EQ(samples(m.registry().render()).at("lens_embed_database_lost"), 1);
  m.on_database_back();
  EXPECT_EQ(m.unhealthy(), "database lost");
  m.on_database_back();
  EXPECT_EQ(m.unhealthy(), std::nullopt);
  EXPECT_EQ(samples(m.registry().render()).at("lens_embed_database_lost"), 0);
}

TEST(RunMetrics, ABusyPortIsAConfigurationErrorNamingTheFlag) {
  RunMetrics m(context());
  auto first = serve_metrics({"127.0.0.1", 0}, m);
  ASSERT_TRUE(first) << first.error().message;
  auto second = serve_metrics({"127.0.0.1", (*first)->address().port}, m);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, util::ErrorCode::configuration);
  EXPECT_NE(second.error().message.find("--metrics-addr"), std::string::npos) << second.error().message;
  EXPECT_NE(second.error().message.find("in use"), std::string::npos) << second.error().message;
}

}  // namespace
}  // namespace lens::cli
