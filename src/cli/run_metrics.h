// `run --metrics-addr`: lens-embed's metrics (names, help, labels: docs/OPERATIONS.md
// "Metrics"), fed by the pipeline through its one observer interface and served by the
// metrics module's endpoint. The run updates them with atomic adds; a scrape reads them.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "metrics/http_endpoint.h"
#include "metrics/registry.h"
#include "pipeline/observer.h"

namespace lens::cli {

class RunMetrics final : public pipeline::RunObserver {
 public:
  struct Context {
    std::string provider, model, version;
    double usd_per_million_tokens = 0;
    bool claims = false;  // the store splits work by claims (PostgreSQL): outstanding = claims held
  };
  explicit RunMetrics(const Context& context);

  [[nodiscard]] const metrics::Registry& registry() const { return registry_; }
  // For /healthz: nullopt while the run is healthy; "provider circuit open" while the
  // breaker is open (the run stops, or with --follow waits), "database lost" while a
  // database call is being retried.
  [[nodiscard]] std::optional<std::string> unhealthy() const;

  void on_request(const pipeline::RequestReport& report) override;
  void on_retry() override { retries_.add(); }
  void on_commit(const pipeline::CommitReport& report) override;
  void on_provider_available(bool available) override;
  void on_database_lost() override { ++lost_calls_; }
  void on_database_back() override { --lost_calls_; }
  bool wants_pending_count() override;
  void on_pending_count(std::int64_t pending) override;
  void on_oldest_pending(std::optional<std::chrono::system_clock::time_point> changed_at) override;
  void on_gauges(const pipeline::RunGauges& gauges) override;

  // How often a pass may count the pending work (Store::count_pending scans the messages):
  // in between, the gauge is the last count minus what was handled since.
  static constexpr std::chrono::seconds k_pending_recount{30};

 private:
  metrics::Counter& requests(int status);
  void update_pending();

  Context context_;
  metrics::Registry registry_;
  metrics::Counter &embedded_, &unchanged_, &tokens_, &usd_, &retries_, &rate_limited_, &trips_;
  metrics::CounterFamily &failures_, &requests_;
  metrics::Histogram& latency_;
  metrics::Gauge &pending_, &in_flight_, &concurrency_, &rpm_, &tpm_, &claims_, &circuit_open_;
  // Requests by status, found once per status (the family's lookup takes a lock).
  std::array<std::atomic<metrics::Counter*>, 600> by_status_{};
  std::atomic<int> lost_calls_{0};  // database calls being retried now
  // Pending: the last count and how many exchanges were handled when it was taken.
  std::atomic<std::int64_t> pending_counted_{-1}, handled_{0}, handled_at_count_{0};
  std::atomic<std::int64_t> counted_at_ns_{0};       // steady clock; 0: never
  std::atomic<std::int64_t> oldest_pending_us_{-1};  // system clock; -1: none
};

// Starts the endpoint for `metrics` on `address` and logs where it listens.
// On failure: configuration naming --metrics-addr and the reason (exit 2).
[[nodiscard]] util::Result<std::unique_ptr<metrics::HttpEndpoint>> serve_metrics(
    const metrics::ListenAddress& address, const RunMetrics& metrics);

}  // namespace lens::cli
