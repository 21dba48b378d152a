// The registry's exposition text, the listen address forms, and the endpoint over a real
// loopback socket.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "metrics/http_endpoint.h"
#include "metrics/listen_address.h"
#include "metrics/registry.h"

namespace lens::metrics {
namespace {

TEST(Registry, RendersHelpTypeAndEverySeries) {
  Registry r;
  r.counter("x_done_total", "Things done.").add(3);
  auto& by = r.counter_family("x_failures_total", "Failures by reason.", {"reason", "class"});
  by.with({"context_length", "permanent"}).add();
  by.with({"context_length", "permanent"}).add(2);
  by.with({"odd \"one\"\\\n", "transient"}).add();
  r.gauge("x_in_flight", "Requests out.").set(2.5);
  r.counter_family("x_batches_total", "Declared, nothing yet.", {"status"});
  r.gauge_function("x_age_seconds", "Computed at scrape.", [] { return 42.0; });
  EXPECT_EQ(r.render(),
            "# HELP x_done_total Things done.\n# TYPE x_done_total counter\nx_done_total 3\n"
            "# HELP x_failures_total Failures by reason.\n# TYPE x_failures_total counter\n"
            "x_failures_total{reason=\"context_length\",class=\"permanent\"} 3\n"
            "x_failures_total{reason=\"odd \\\"one\\\"\\\\\\n\",class=\"transient\"} 1\n"
            "# HELP x_in_flight Requests out.\n# TYPE x_in_flight gauge\nx_in_flight 2.5\n"
            "# HELP x_batches_total Declared, nothing yet.\n# TYPE x_batches_total counter\n"
            "# HELP x_age_seconds Computed at scrape.\n# TYPE x_age_seconds gauge\nx_age_seconds 42\n");
}

TEST(Registry, HistogramBucketsAreCumulativeAndCountIsInf) {
  Registry r;
  auto& h = r.histogram("x_seconds", "Latency.", {0.1, 1});
  for (double v : {0.05, 0.1, 0.5, 3.0})
    h.observe(v);
  EXPECT_EQ(r.render(),
            "# HELP x_seconds Latency.\n# TYPE x_seconds histogram\n"
            "x_seconds_bucket{le=\"0.1\"} 2\nx_seconds_bucket{le=\"1\"} 3\nx_seconds_bucket{le=\"+Inf\"} 4\n"
            "x_seconds_sum 3.65\nx_seconds_count 4\n");
}

TEST(Registry, CountersAddUpAcrossThreads) {
  Registry r;
  auto& c = r.counter("x_total", "n");
  auto& h = r.histogram("x_seconds", "n", latency_buckets());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10'000; ++i) {
        c.add();
        h.observe(0.02);
      }
    });
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(c.value(), 40'000);
  EXPECT_EQ(h.snapshot().cumulative.back(), 40'000u);
}

TEST(Registry, FormatsValuesAsTheExpositionFormatReadsThem) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(123456789012), "123456789012");
  EXPECT_EQ(format_value(0.25), "0.25");
  EXPECT_EQ(format_value(1.0 / 0.0), "+Inf");
  EXPECT_EQ(format_value(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(format_value(std::nan("")), "NaN");
}

TEST(ListenAddress, PortAloneMeansLoopback) {
  auto a = parse_listen_address("9464");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9464);
  a = parse_listen_address("0.0.0.0:80");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "0.0.0.0");
  a = parse_listen_address("[::1]:0");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 0);
  EXPECT_EQ(a->text(), "[::1]:0");
  a = parse_listen_address("metrics.internal:9464");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->text(), "metrics.internal:9464");
}

TEST(ListenAddress, RefusesWhatItWouldHaveToGuess) {
  for (const char* bad :
       {"", ":9464", "65536", "-1", "host:", "host:port", "::1:80", "[::1]", "[::1]80", "a b:1"}) {
    auto a = parse_listen_address(bad);
    ASSERT_FALSE(a) << bad;
    EXPECT_EQ(a.error().code, util::ErrorCode::invalid_argument);
    EXPECT_NE(a.error().message.find("HOST:PORT"), std::string::npos) << a.error().message;
  }
}

// One HTTP exchange over loopback: the whole answer, until the server closes.
std::string http(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return "<connect failed>";
  }
  (void)!::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;)
    out.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return out;
}

TEST(HttpEndpoint, ServesMetricsAndHealth) {
  Registry r;
  auto& c = r.counter("x_total", "n");
  std::atomic<bool> healthy{true};
  auto ep = HttpEndpoint::start({"127.0.0.1", 0}, r, [&]() -> std::optional<std::string> {
    if (healthy) return std::nullopt;
    return "provider circuit open";
  });
  ASSERT_TRUE(ep) << ep.error().message;
  const int port = (*ep)->address().port;
  ASSERT_GT(port, 0);
  c.add(7);
  std::string a = http(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(a.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << a;
  EXPECT_NE(a.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << a;
  EXPECT_NE(a.find("\r\n\r\n# HELP x_total n\n# TYPE x_total counter\nx_total 7\n"), std::string::npos) << a;
  a = http(port, "GET /healthz?verbose=1 HTTP/1.0\r\n\r\n");
  EXPECT_EQ(a.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << a;
  EXPECT_TRUE(a.ends_with("\r\n\r\nok\n")) << a;
  healthy = false;
  a = http(port, "GET /healthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(a.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0), 0u) << a;
  EXPECT_TRUE(a.ends_with("unhealthy: provider circuit open\n")) << a;
  a = http(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(a.ends_with("Connection: close\r\n\r\n")) << a;
  EXPECT_EQ(http(port, "GET /other HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(http(port, "POST /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_EQ(http(port, "garbage\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
}

TEST(HttpEndpoint, AClientThatSendsNothingDoesNotStopTheNext) {
  Registry r;
  r.counter("x_total", "n");
  auto ep = HttpEndpoint::start({"127.0.0.1", 0}, r, [] { return std::nullopt; });
  ASSERT_TRUE(ep);
  const int port = (*ep)->address().port;
  // Connect and stay silent; the next client is answered once the silent one times out.
  const int idle = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(idle, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  EXPECT_EQ(http(port, "GET /healthz HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200", 0), 0u);
  ::close(idle);
}

TEST(HttpEndpoint, ABusyPortIsAConfigurationErrorNamingIt) {
  Registry r;
  auto first = HttpEndpoint::start({"127.0.0.1", 0}, r, [] { return std::nullopt; });
  ASSERT_TRUE(first);
  const ListenAddress taken{"127.0.0.1", (*first)->address().port};
  auto second = HttpEndpoint::start(taken, r, [] { return std::nullopt; });
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, util::ErrorCode::configuration);
  EXPECT_NE(second.error().message.find("cannot listen on " + taken.text()), std::string::npos)
      << second.error().message;
}

}  // namespace
}  // namespace lens::metrics
