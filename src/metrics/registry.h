// The metrics registry: counters, gauges and histograms that any thread updates with an
// atomic add or store, and one reader (a scrape) renders in the Prometheus text
// exposition format (version 0.0.4). Knows nothing of what is measured: the cli's
// run_metrics.cpp declares lens-embed's metrics and feeds them from the pipeline.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lens::metrics {

// A value that only goes up. add() is one atomic read-modify-write; any thread.
class Counter {
 public:
  // REQUIRES: v >= 0 (a counter never goes down; Prometheus reads a drop as a restart).
  void add(double v = 1) { value_.fetch_add(v, std::memory_order_relaxed); }
  [[nodiscard]] double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// A value that is set. Any thread.
class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  [[nodiscard]] double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Counts observations into fixed buckets (upper bounds, ascending; +Inf is implicit).
// observe() is a search over the bounds and two atomic adds; any thread.
class Histogram {
 public:
  // REQUIRES: `bounds` ascending, finite.
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<std::uint64_t> cumulative;  // per bound, then +Inf (= count)
    double sum = 0;
  };
  // Consistent in itself: the +Inf bucket is the count (a concurrent observe() may have
  // added its sum and not yet its bucket, or the reverse; Prometheus tolerates that).
  [[nodiscard]] Snapshot snapshot() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // bounds_.size() + 1, not cumulative
  std::atomic<double> sum_{0};
};

// Request latencies in seconds, from 5 ms to the 120 s default request timeout.
[[nodiscard]] std::vector<double> latency_buckets();

// A family of series that differ by the values of the family's labels. with() finds or
// creates one series (under a mutex): callers on a hot path keep the reference it returns,
// which stays valid as long as the family.
template <typename Metric>
class Family {
 public:
  explicit Family(std::vector<std::string> label_names) : label_names_(std::move(label_names)) {}
  // REQUIRES: one value per label name. Values are escaped when rendered, so any text is
  // safe; the caller must never pass message content or a secret (CONTRACT: labels are
  // closed vocabularies such as a failure reason or an HTTP status).
  Metric& with(const std::vector<std::string>& values) {
    std::lock_guard lock(mutex_);
    for (auto& s : series_)
      if (s.first == values) return s.second;
    return series_
        .emplace_back(std::piecewise_construct, std::forward_as_tuple(values), std::forward_as_tuple())
        .second;
  }
  [[nodiscard]] const std::vector<std::string>& label_names() const { return label_names_; }
  // Calls f(label values, metric) for each series, in creation order.
  template <typename F>
  void each(F&& f) const {
    std::lock_guard lock(mutex_);
    for (const auto& s : series_)
      f(s.first, s.second);
  }

 private:
  std::vector<std::string> label_names_;
  mutable std::mutex mutex_;
  std::deque<std::pair<std::vector<std::string>, Metric>> series_;  // a deque: references stay valid
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;

// Owns every metric it hands out; they live as long as the registry. Registering is done
// once, before the metrics are used or scraped (not concurrently with render()).
// Names: [a-zA-Z_:][a-zA-Z0-9_:]*; a counter's name ends in "_total"; label names
// [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__". A name is registered once.
// REQUIRES: the rules above (they are the program's own constants; a unit test renders
// every metric lens-embed declares through promtool).
class Registry {
 public:
  Counter& counter(std::string name, std::string help);
  CounterFamily& counter_family(std::string name, std::string help, std::vector<std::string> label_names);
  Gauge& gauge(std::string name, std::string help);
  GaugeFamily& gauge_family(std::string name, std::string help, std::vector<std::string> label_names);
  // A gauge whose value `read` computes at each scrape (on the scraping thread), e.g. an
  // age from a stored timestamp. `read` must be thread-safe and quick.
  void gauge_function(std::string name, std::string help, std::function<double()> read);
  Histogram& histogram(std::string name, std::string help, std::vector<double> bounds);

  // Every metric in the order registered: "# HELP", "# TYPE" and one line per series.
  // A family without series yet renders its HELP and TYPE only. Safe to call while other
  // threads update the metrics.
  [[nodiscard]] std::string render() const;

 private:
  enum class Kind { counter, counter_family, gauge, gauge_family, gauge_function, histogram };
  struct Entry {
    std::string name, help;
    Kind kind;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<CounterFamily> counter_family;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<GaugeFamily> gauge_family;
    std::function<double()> read;
    std::unique_ptr<Histogram> histogram;
  };
  Entry& add(std::string name, std::string help, Kind kind);

  std::vector<Entry> entries_;
};

// A sample value as the exposition format writes it: integers without a fraction or an
// exponent, "+Inf", "-Inf", "NaN", anything else with the shortest exact form.
[[nodiscard]] std::string format_value(double v);
// A label value escaped for the exposition format (backslash, double quote, newline).
[[nodiscard]] std::string escape_label_value(std::string_view v);

}  // namespace lens::metrics
