// RunObserver: the one interface through which a run tells an observer (the cli's metrics)
// what happens as it happens. The run calls it at the moments its own counters move, so
// what an observer adds up equals the run's summary. Nothing in the run waits for or reads
// from an observer, and nothing else reaches into the run for metrics.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>

#include "core/types.h"

namespace lens::pipeline {

// One provider request that ended (RunStats::requests counts the same ones; abandoned
// requests end nowhere).
struct RequestReport {
  int http_status = 0;                       // the answer's status; 0 when there was no HTTP answer
  bool rate_limited = false;                 // counted in RunStats::rate_limited
  std::chrono::duration<double> latency{0};  // from send to completion
};

// One commit of the writer: what it made durable.
struct CommitReport {
  std::int64_t embedded = 0;                // rows written
  std::int64_t unchanged = 0;               // rows whose markers were refreshed
  std::int64_t tokens = 0;                  // input tokens of the rows written
  std::span<const core::Failure> failures;  // recorded; valid during the call only
};

// The dispatcher's state between two polls.
struct RunGauges {
  int in_flight = 0;             // requests sent and not answered
  int concurrency_limit = 0;     // the AIMD window now
  double rpm_limit = 0;          // requests per minute in force (configured or adopted); 0 = none
  double tpm_limit = 0;          // tokens per minute in force; 0 = none
  std::int64_t outstanding = 0;  // exchanges read and not committed (claimed, on PostgreSQL)
};

// Every method is called on the run's own threads (which one is said per method), possibly
// concurrently from different threads, and must be cheap and never block: an atomic add or
// store. The defaults ignore the event.
class RunObserver {
 public:
  virtual ~RunObserver() = default;

  // Dispatcher thread: a request ended (any outcome but abandonment).
  virtual void on_request(const RequestReport& /*report*/) {}
  // Dispatcher thread: a request will be sent again (RunStats::retries counts the same).
  virtual void on_retry() {}
  // Writer thread: a commit succeeded.
  virtual void on_commit(const CommitReport& /*report*/) {}
  // Dispatcher thread: the circuit breaker opened (false: a trip; the run stops, or with
  // --follow pauses) or the provider answers again after a pause (true).
  virtual void on_provider_available(bool /*available*/) {}
  // Any thread: a database call failed and is retried (on_database_lost), and later that
  // call ended, with success or for good (on_database_back): one of each per such call;
  // calls of different threads may overlap.
  virtual void on_database_lost() {}
  virtual void on_database_back() {}
  // Reader thread, at the start of a pass over the pending work when wants_pending_count()
  // said so: the store's estimate of the exchanges left (Store::count_pending).
  [[nodiscard]] virtual bool wants_pending_count() { return false; }
  virtual void on_pending_count(std::int64_t /*pending*/) {}
  // Reader thread: the oldest change (coalesce(updated_at, created_at)) among the
  // exchanges found pending since the run last caught up; nullopt once it caught up
  // (everything read is committed and a pass found the end).
  virtual void on_oldest_pending(std::optional<std::chrono::system_clock::time_point> /*changed_at*/) {}
  // Dispatcher thread, between polls (at least every ~100 ms).
  virtual void on_gauges(const RunGauges& /*gauges*/) {}
};

}  // namespace lens::pipeline
