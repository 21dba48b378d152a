// Turns the run's gauges into ProgressSnapshots for the cli: elapsed time, recent tokens
// per minute, money spent, at most once per progress interval plus the final report.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <utility>

#include "core/types.h"
#include "pipeline/progress.h"

namespace lens::pipeline {

// Used by one thread (the dispatcher's) at a time.
class ProgressMeter {
 public:
  using Clock = std::chrono::steady_clock;

  // What the run knows at the moment of a report.
  struct Gauges {
    core::RunStats stats;
    std::int64_t handled = 0;  // exchanges done so far (would be done, for a dry run)
    int in_flight = 0;
    double tpm_limit = 0;  // the RateController's token limit in force; 0 = unlimited
    bool tpm_limit_from_server = false;
  };

  // `listener` (null: report nothing) is owned by the caller and outlives the meter.
  ProgressMeter(ProgressListener* listener, std::chrono::milliseconds interval, double usd_per_million_tokens,
                Clock::time_point started);

  // Exchanges this run is expected to handle; -1 (the default) when unknown.
  void set_total(std::int64_t total) { total_ = total; }
  // True when a listener is set and a report is due (at most once per interval); the
  // caller then builds the gauges and calls report().
  [[nodiscard]] bool due();
  // Sends one snapshot to the listener (none without one); `final` for the last.
  void report(const Gauges& gauges, bool final);

 private:
  ProgressListener* listener_;
  std::chrono::milliseconds interval_;
  double usd_per_million_tokens_;
  Clock::time_point started_;
  Clock::time_point last_;
  std::int64_t total_ = -1;
  std::deque<std::pair<Clock::time_point, std::int64_t>> tpm_window_;  // (when, tokens so far)
};

}  // namespace lens::pipeline
