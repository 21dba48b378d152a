// What the run's threads share: the stop request, the first fatal error and the counters.
// Everything else each stage owns alone and hands on through the queues.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>

#include "core/types.h"
#include "pipeline/observer.h"
#include "util/result.h"

namespace lens::pipeline {

// Signal state shared with the cli: 0 run, 1 stop taking new work and finish.
using StopFlag = std::atomic<int>;

// The run's counters. Any thread may add to them and take a snapshot. Who adds what:
// the reader `truncated`; the dispatcher `requests`, `retries`, `rate_limited`; the writer
// `embedded`, `tokens`, `unchanged`, `failed`, `fenced`, and only after they are committed.
struct RunCounters {
  std::atomic<std::int64_t> embedded{0}, unchanged{0}, failed{0}, truncated{0}, tokens{0}, requests{0},
      retries{0}, rate_limited{0}, fenced{0};

  [[nodiscard]] core::RunStats snapshot() const {
    core::RunStats s;
    s.embedded = embedded;
    s.unchanged = unchanged;
    s.failed = failed;
    s.truncated = truncated;
    s.tokens = tokens;
    s.requests = requests;
    s.retries = retries;
    s.rate_limited = rate_limited;
    s.fenced = fenced;
    return s;
  }
};

// Every method may be called from any thread.
class RunState {
 public:
  // `stop` (may be null: never stopped) and `observer` (may be null: nobody listens) are
  // owned by the caller and outlive the run.
  explicit RunState(const StopFlag* stop, RunObserver* observer = nullptr)
      : stop_(stop), observer_(observer != nullptr ? observer : &nobody_) {}

  // Never null: a no-op observer when the run has none.
  [[nodiscard]] RunObserver& observer() const { return *observer_; }

  // A stop was requested: take no new work, finish what is in flight.
  [[nodiscard]] bool stopping() const { return stop_ != nullptr && stop_->load() > 0; }

  [[nodiscard]] bool has_fatal() const { return fatal_flag_.load(); }
  // Records why the run must stop; the first error wins, later ones are dropped.
  void set_fatal(const util::Error& error) {
    std::lock_guard lock(mutex_);
    if (!fatal_) fatal_ = error;
    fatal_flag_ = true;
  }
  [[nodiscard]] std::optional<util::Error> fatal() const {
    std::lock_guard lock(mutex_);
    return fatal_;
  }

  RunCounters counters;

  // Exchanges the reader handed on (to the dispatcher, or straight to the writer) whose
  // result is not committed yet. The reader adds before it hands one on; the writer
  // subtracts what each commit carried. Zero means everything read so far is in the
  // database, so a new pass over the keyset cannot offer an exchange that is still on its
  // way (which would send it twice).
  std::atomic<std::int64_t> outstanding{0};

 private:
  const StopFlag* stop_;
  RunObserver nobody_;
  RunObserver* observer_;
  std::atomic<bool> fatal_flag_{false};
  mutable std::mutex mutex_;
  std::optional<util::Error> fatal_;
};

}  // namespace lens::pipeline
