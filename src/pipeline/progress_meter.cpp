// Progress snapshots: a sliding window of recent reports gives tokens per minute.
#include "pipeline/progress_meter.h"

namespace lens::pipeline {

ProgressMeter::ProgressMeter(ProgressListener* listener, std::chrono::milliseconds interval,
                             double usd_per_million_tokens, Clock::time_point started)
    : listener_(listener),
      interval_(interval),
      usd_per_million_tokens_(usd_per_million_tokens),
      started_(started),
      last_(Clock::now()) {}

bool ProgressMeter::due() {
  if (!listener_) return false;
  const auto now = Clock::now();
  if (now - last_ < interval_) return false;
  last_ = now;
  return true;
}

void ProgressMeter::report(const Gauges& gauges, bool final) {
  if (!listener_) return;
  const auto now = Clock::now();
  ProgressSnapshot s;
  s.stats = gauges.stats;
  s.total = total_;
  s.handled = gauges.handled;
  s.elapsed = now - started_;
  s.in_flight = gauges.in_flight;
  s.tpm_limit = gauges.tpm_limit;
  s.tpm_limit_from_server = gauges.tpm_limit_from_server;
  s.usd_spent = static_cast<double>(s.stats.tokens) * usd_per_million_tokens_ / 1e6;
  // Tokens per minute over the reports of the last ten seconds.
  tpm_window_.emplace_back(now, s.stats.tokens);
  while (tpm_window_.size() > 2 && now - tpm_window_.front().first > std::chrono::seconds(10)) {
    tpm_window_.pop_front();
  }
  const auto span = std::chrono::duration<double>(now - tpm_window_.front().first).count();
  if (span > 0.2) {
    s.tokens_per_minute = static_cast<double>(s.stats.tokens - tpm_window_.front().second) / span * 60.0;
  }
  s.final = final;
  listener_->on_progress(s);
}

}  // namespace lens::pipeline
