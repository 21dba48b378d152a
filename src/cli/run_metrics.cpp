// The metrics of a run: declared once here, in the order /metrics lists them.
#include "cli/run_metrics.h"

#include "core/vocabulary.h"
#include "util/log.h"

namespace lens::cli {
namespace {

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

RunMetrics::RunMetrics(const Context& context)
    : context_(context),
      embedded_(
          registry_.counter("lens_embed_exchanges_embedded_total",
                            "Exchanges embedded (a row written, new or updated), counted once committed.")),
      unchanged_(registry_.counter(
          "lens_embed_exchanges_unchanged_total",
          "Exchanges whose input was unchanged: only their change markers were refreshed.")),
      tokens_(registry_.counter("lens_embed_tokens_total",
                                "Input tokens of the exchanges embedded (exact count).")),
      usd_(registry_.counter("lens_embed_cost_usd_total",
                             "Cost of the tokens embedded in US dollars, at the model table's price.")),
      retries_(
          registry_.counter("lens_embed_retries_total", "Provider requests sent again after a failure.")),
      rate_limited_(
          registry_.counter("lens_embed_rate_limited_total",
                            "Provider answers that were rate limits (HTTP 429), waited out as advised.")),
      trips_(registry_.counter("lens_embed_circuit_breaker_trips_total",
                               "Times the provider was judged unavailable (the circuit opened).")),
      failures_(
          registry_.counter_family("lens_embed_failures_total",
                                   "Failures recorded, by reason and by class (permanent: until the message "
                                   "is edited; transient: retried by a later run).",
                                   {"reason", "class"})),
      requests_(registry_.counter_family(
          "lens_embed_requests_total",
          "Provider requests that ended, by HTTP status (0: no HTTP answer: refused, "
          "reset, timeout).",
          {"code"})),
      latency_(registry_.histogram("lens_embed_request_duration_seconds",
                                   "Provider request latency, from send to answer.",
                                   metrics::latency_buckets())),
      pending_(
          registry_.gauge("lens_embed_pending_exchanges",
                          "Exchanges waiting to be embedded: the database's count at the start of a pass (at "
                          "most every 30 s) minus those handled since.")),
      in_flight_(
          registry_.gauge("lens_embed_in_flight_requests", "Provider requests sent and not answered.")),
      concurrency_(registry_.gauge("lens_embed_concurrency_limit",
                                   "Requests allowed in flight now (the window shrinks on rate limits).")),
      rpm_(registry_.gauge("lens_embed_rate_limit_requests_per_minute",
                           "Requests per minute the run holds to: configured, or adopted from the server's "
                           "x-ratelimit-limit-requests when lower (0: unlimited).")),
      tpm_(registry_.gauge("lens_embed_rate_limit_tokens_per_minute",
                           "Tokens per minute the run holds to: configured, or adopted from the server's "
                           "x-ratelimit-limit-tokens when lower (0: unlimited).")),
      claims_(
          registry_.gauge("lens_embed_claims_held",
                          "Exchanges this worker has claimed and not yet written (PostgreSQL; 0 on SQLite, "
                          "which has no claims).")),
      circuit_open_(
          registry_.gauge("lens_embed_provider_circuit_open",
                          "1 while the provider is judged unavailable (the run stops, or with --follow "
                          "probes until it answers), else 0.")) {
  // Read from the count of calls being retried: threads that lose and regain the
  // database at the same time cannot leave a stale 0 or 1 behind.
  registry_.gauge_function("lens_embed_database_lost", "1 while a database call is being retried, else 0.",
                           [this] { return lost_calls_.load() > 0 ? 1.0 : 0.0; });
  registry_.gauge_function("lens_embed_oldest_pending_age_seconds",
                           "Age of the oldest change (coalesce(updated_at, created_at)) among the exchanges "
                           "found pending since the run "
                           "last caught up; 0 when caught up.",
                           [this] {
                             const std::int64_t us = oldest_pending_us_.load();
                             if (us < 0) return 0.0;
                             const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                                                  std::chrono::system_clock::now().time_since_epoch())
                                                  .count();
                             return now > us ? static_cast<double>(now - us) / 1e6 : 0.0;
                           });
  // Declared now so dashboards can be built; fed by the Batch API driver once it exists.
  registry_.counter_family("lens_embed_batches_total", "Batch API jobs by final status.", {"status"});
  registry_
      .gauge_family("lens_embed_info", "The run's provider, model and lens-embed version (always 1).",
                    {"provider", "model", "version"})
      .with({context_.provider, context_.model, context_.version})
      .set(1);
  // Every reason from zero, so that rate() sees the first failure of each.
  for (auto reason : core::k_all_failure_reasons)
    failures_.with(
        {std::string(core::to_string(reason)), std::string(core::to_string(core::failure_class(reason)))});
}

metrics::Counter& RunMetrics::requests(int status) {
  if (status < 0 || status >= static_cast<int>(by_status_.size())) status = 0;
  auto& slot = by_status_[static_cast<std::size_t>(status)];
  metrics::Counter* c = slot.load(std::memory_order_acquire);
  if (c == nullptr) {
    c = &requests_.with({std::to_string(status)});
    slot.store(c, std::memory_order_release);
  }
  return *c;
}

void RunMetrics::on_request(const pipeline::RequestReport& report) {
  requests(report.http_status).add();
  if (report.rate_limited) rate_limited_.add();
  latency_.observe(report.latency.count());
}

void RunMetrics::on_commit(const pipeline::CommitReport& report) {
  embedded_.add(static_cast<double>(report.embedded));
  unchanged_.add(static_cast<double>(report.unchanged));
  tokens_.add(static_cast<double>(report.tokens));
  usd_.add(static_cast<double>(report.tokens) * context_.usd_per_million_tokens / 1e6);
  for (const auto& f : report.failures)
    failures_
        .with({std::string(core::to_string(f.reason)),
               std::string(core::to_string(core::failure_class(f.reason)))})
        .add();
  handled_ += report.embedded + report.unchanged + static_cast<std::int64_t>(report.failures.size());
  update_pending();
}

void RunMetrics::on_provider_available(bool available) {
  if (!available) trips_.add();
  circuit_open_.set(available ? 0 : 1);
}

bool RunMetrics::wants_pending_count() {
  const std::int64_t at = counted_at_ns_.load();
  return at == 0 || steady_ns() - at >= std::chrono::nanoseconds(k_pending_recount).count();
}

void RunMetrics::on_pending_count(std::int64_t pending) {
  counted_at_ns_ = steady_ns();
  handled_at_count_ = handled_.load();
  pending_counted_ = pending;
  update_pending();
}

void RunMetrics::update_pending() {
  const std::int64_t counted = pending_counted_.load();
  if (counted < 0) return;
  const std::int64_t left = counted - (handled_.load() - handled_at_count_.load());
  pending_.set(static_cast<double>(left > 0 ? left : 0));
}

void RunMetrics::on_oldest_pending(std::optional<std::chrono::system_clock::time_point> changed_at) {
  oldest_pending_us_ =
      changed_at
          ? std::chrono::duration_cast<std::chrono::microseconds>(changed_at->time_since_epoch()).count()
          : -1;
}

void RunMetrics::on_gauges(const pipeline::RunGauges& g) {
  in_flight_.set(g.in_flight);
  concurrency_.set(g.concurrency_limit);
  rpm_.set(g.rpm_limit);
  tpm_.set(g.tpm_limit);
  claims_.set(context_.claims ? static_cast<double>(g.outstanding) : 0.0);
}

std::optional<std::string> RunMetrics::unhealthy() const {
  if (circuit_open_.value() != 0) return "provider circuit open";
  if (lost_calls_.load() > 0) return "database lost";
  return std::nullopt;
}

util::Result<std::unique_ptr<metrics::HttpEndpoint>> serve_metrics(const metrics::ListenAddress& address,
                                                                   const RunMetrics& metrics) {
  auto endpoint =
      metrics::HttpEndpoint::start(address, metrics.registry(), [&metrics] { return metrics.unhealthy(); });
  if (!endpoint) {
    return util::fail(util::ErrorCode::configuration, "--metrics-addr: " + endpoint.error().message);
  }
  util::log_info("metrics: serving http://{}/metrics and /healthz", (*endpoint)->address().text());
  return endpoint;
}

}  // namespace lens::cli
