// Registry storage and the text exposition format (Prometheus 0.0.4).
#include "metrics/registry.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace lens::metrics {
namespace {

bool valid_name(std::string_view n, bool colon_allowed) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                    (colon_allowed && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// Registration breaks the registry's rules only through a bug of ours (names are
// constants): stop at once, so the first test that starts the program finds it.
[[noreturn]] void misuse(const std::string& what) {
  std::fprintf(stderr, "lens-embed: metrics registry: %s\n", what.c_str());
  std::abort();
}

std::string escape_help(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string label_set(const std::vector<std::string>& names, const std::vector<std::string>& values) {
  if (names.empty()) return {};
  std::string out = "{";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    out += names[i];
    out += "=\"";
    out += escape_label_value(i < values.size() ? values[i] : std::string());
    out += '"';
  }
  out += '}';
  return out;
}

}  // namespace

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 9.007199254740992e15)
    return fmt::format("{}", static_cast<long long>(v));
  return fmt::format("{}", v);
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i)
    buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double v) {
  // The first bound >= v: Prometheus buckets are "less than or equal".
  const auto i =
      static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> latency_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
}

Registry::Entry& Registry::add(std::string name, std::string help, Kind kind) {
  if (!valid_name(name, true)) misuse("invalid metric name \"" + name + "\"");
  const bool is_counter = kind == Kind::counter || kind == Kind::counter_family;
  const bool ends_total = name.size() > 6 && name.ends_with("_total");
  if (is_counter != ends_total) misuse("\"" + name + "\": counters, and only counters, end in _total");
  for (const auto& e : entries_)
    if (e.name == name) misuse("\"" + name + "\" registered twice");
  Entry& e = entries_.emplace_back();
  e.name = std::move(name);
  e.help = std::move(help);
  e.kind = kind;
  return e;
}

namespace {
void check_labels(const std::vector<std::string>& names) {
  for (const auto& n : names)
    if (!valid_name(n, false) || n.starts_with("__") || n == "le") misuse("invalid label name \"" + n + "\"");
}
}  // namespace

Counter& Registry::counter(std::string name, std::string help) {
  Entry& e = add(std::move(name), std::move(help), Kind::counter);
  e.counter = std::make_unique<Counter>();
  return *e.counter;
}

CounterFamily& Registry::counter_family(std::string name, std::string help,
                                        std::vector<std::string> label_names) {
  check_labels(label_names);
  Entry& e = add(std::move(name), std::move(help), Kind::counter_family);
  e.counter_family = std::make_unique<CounterFamily>(std::move(label_names));
  return *e.counter_family;
}

Gauge& Registry::gauge(std::string name, std::string help) {
  Entry& e = add(std::move(name), std::move(help), Kind::gauge);
  e.gauge = std::make_unique<Gauge>();
  return *e.gauge;
}

GaugeFamily& Registry::gauge_family(std::string name, std::string help,
                                    std::vector<std::string> label_names) {
  check_labels(label_names);
  Entry& e = add(std::move(name), std::move(help), Kind::gauge_family);
  e.gauge_family = std::make_unique<GaugeFamily>(std::move(label_names));
  return *e.gauge_family;
}

void Registry::gauge_function(std::string name, std::string help, std::function<double()> read) {
  Entry& e = add(std::move(name), std::move(help), Kind::gauge_function);
  e.read = std::move(read);
}

Histogram& Registry::histogram(std::string name, std::string help, std::vector<double> bounds) {
  if (!std::is_sorted(bounds.begin(), bounds.end()) ||
      std::any_of(bounds.begin(), bounds.end(), [](double b) { return !std::isfinite(b); }))
    misuse("histogram \"" + name + "\": bounds must be finite and ascending");
  Entry& e = add(std::move(name), std::move(help), Kind::histogram);
  e.histogram = std::make_unique<Histogram>(std::move(bounds));
  return *e.histogram;
}

std::string Registry::render() const {
  std::string out;
  auto line = [&](const std::string& name, const std::string& labels, double v) {
    out += name;
    out += labels;
    out += ' ';
    out += format_value(v);
    out += '\n';
  };
  for (const auto& e : entries_) {
    const char* type = "gauge";
    if (e.kind == Kind::counter || e.kind == Kind::counter_family) type = "counter";
    if (e.kind == Kind::histogram) type = "histogram";
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", e.name, escape_help(e.help), e.name, type);
    switch (e.kind) {
      case Kind::counter:
        line(e.name, "", e.counter->value());
        break;
      case Kind::gauge:
        line(e.name, "", e.gauge->value());
        break;
      case Kind::gauge_function:
        line(e.name, "", e.read());
        break;
      case Kind::counter_family:
        e.counter_family->each([&](const std::vector<std::string>& values, const Counter& c) {
          line(e.name, label_set(e.counter_family->label_names(), values), c.value());
        });
        break;
      case Kind::gauge_family:
        e.gauge_family->each([&](const std::vector<std::string>& values, const Gauge& g) {
          line(e.name, label_set(e.gauge_family->label_names(), values), g.value());
        });
        break;
      case Kind::histogram: {
        const auto s = e.histogram->snapshot();
        for (std::size_t i = 0; i < s.bounds.size(); ++i)
          line(e.name + "_bucket", "{le=\"" + format_value(s.bounds[i]) + "\"}",
               static_cast<double>(s.cumulative[i]));
        line(e.name + "_bucket", "{le=\"+Inf\"}", static_cast<double>(s.cumulative.back()));
        line(e.name + "_sum", "", s.sum);
        line(e.name + "_count", "", static_cast<double>(s.cumulative.back()));
        break;
      }
    }
  }
  return out;
}

}  // namespace lens::metrics
