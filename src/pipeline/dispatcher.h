// The dispatcher: prepared inputs in, provider requests out, results to the writer.
// Packs requests, admits them through the RateController, submits and polls the
// Provider, bisects batches the provider refuses, retries with backoff, averages the
// vectors of chunked inputs, and stops (or, with --follow, pauses) when the circuit
// breaker says the provider is unavailable.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "pipeline/circuit_breaker.h"
#include "pipeline/options.h"
#include "pipeline/prepare.h"
#include "pipeline/rate_controller.h"
#include "pipeline/run_state.h"
#include "pipeline/writer.h"
#include "provider/provider.h"
#include "util/bounded_queue.h"

namespace lens::pipeline {

// Inputs routed to work, from the reader to the dispatcher.
using WorkQueue = util::BoundedQueue<PreparedInput>;

// Not thread-safe: constructed, run and queried on one thread (the run's calling thread),
// the only one that touches `provider`.
class Dispatcher {
 public:
  using Clock = std::chrono::steady_clock;

  // All references are owned by the caller and outlive the Dispatcher. Every input taken
  // from the work queue ends as exactly one message pushed to `results` (a row or a
  // failure), unless the run stops first (then it is simply redone by a later run).
  Dispatcher(const RunOptions& options, provider::Provider& provider, RunState& state, ResultQueue& results);

  // Dispatches until:
  //  - `work` is closed and drained and every input taken from it has its result pushed:
  //    returns true;
  //  - a stop was requested: takes no new work, gives requests in flight up to
  //    options.drain_timeout, then abandons the rest (provider.cancel_all); returns false;
  //  - state.has_fatal() (set by the writer, the reader, or here for a provider error no
  //    retry can fix: fatal, configuration, invalid_argument, not_found; or, without
  //    options.follow, when the circuit breaker opens: a transient error naming the cause
  //    and the setting to check): abandons what is in flight and returns false.
  // Unavailable outcomes (circuit_breaker.h) never count against an input's attempts
  // unless the provider answered other requests meanwhile; nothing is recorded for them.
  // Nor do 429s (rate limits): they are waited out as advised.
  // With options.follow an open breaker pauses dispatching instead: what was in flight is
  // kept (not recorded), one input probes the provider with backoff, and the first answer
  // resumes. Each change of state is logged once.
  // Never throws. Calls `tick` on this thread between polls (at least every ~100 ms) for
  // progress reports; `tick` may read in_flight() and rate().
  bool run(WorkQueue& work, const std::function<void()>& tick);

  // Requests submitted and not yet answered or abandoned.
  [[nodiscard]] int in_flight() const { return static_cast<int>(in_flight_.size()); }
  // The admission state: concurrency window, and the RPM/TPM limits in force (configured,
  // or adopted from the server's x-ratelimit-limit-* headers).
  [[nodiscard]] const RateController& rate() const { return rate_; }

 private:
  // One input on its way: shared by its pieces while their requests are out.
  struct Job {
    PreparedInput input;
    std::vector<float> sum;  // chunked: token-weighted sum of the piece vectors so far
    std::size_t pieces_done = 0;
    bool failed = false;
  };
  struct PieceRef {
    std::shared_ptr<Job> job;
    std::uint32_t piece = 0;
    [[nodiscard]] const PreparedInput::Piece& get() const { return job->input.pieces[piece]; }
    [[nodiscard]] std::string_view text() const { return job->input.piece_text(piece); }
  };
  struct Batch {
    std::vector<PieceRef> pieces;
    std::int64_t tokens = 0;
    int attempts = 0;    // sends that ended in a retryable failure (counted against the inputs)
    int waits = 0;       // sends that ended unavailable or rate-limited (not counted; pace the retries)
    bool probe = false;  // the one input sent to see whether a paused provider is back
    Clock::time_point sent_at{};
    double admitted_after = 0;  // RateController::admitted_tokens() right after its admission
  };

  void take(PreparedInput input);
  void submit_what_fits(Clock::time_point now);
  Batch pack();
  void send(Batch batch);
  void handle(provider::Completion&& completion);
  // What a failed request leads to: stop the run, bisect, retry later, or record its
  // inputs as failures. The one place that maps provider errors to actions.
  void on_failure(Batch batch, const provider::EmbedFailure& failure, Clock::time_point now);
  void accept(const Batch& batch, const provider::EmbedSuccess& ok);
  void finish(Job& job, std::vector<float> vector);
  void fail_batch(const Batch& batch, core::FailureReason reason, const std::string& detail);
  void fail_job(Job& job, core::FailureReason reason, const std::string& detail);
  void abandon_in_flight();
  // An unavailable outcome: retry later without counting it, or (the provider answered
  // others since it was sent) hand it to on_failure as an ordinary transient failure.
  void on_unavailable(Batch batch, const provider::EmbedFailure& failure, Clock::time_point now);
  // Sends `batch` again after the server's advice or a backoff, without counting an attempt.
  void retry_later(Batch batch, const provider::EmbedFailure& failure, Clock::time_point now);
  // --follow: the breaker opened; keep everything, take no new requests, probe.
  void pause(Clock::time_point now);
  void send_probe(Clock::time_point now);
  void resume(Clock::time_point now);
  [[nodiscard]] std::chrono::milliseconds probe_delay(int probes);
  [[nodiscard]] bool holds_work() const {
    return !in_flight_.empty() || !ready_.empty() || !fresh_.empty() || !delayed_.empty() || next_;
  }
  // The one line that says why the run stops or pauses, and what to check.
  [[nodiscard]] std::string unavailable_message(Clock::time_point now) const;

  const RunOptions& options_;
  provider::Provider& provider_;
  RunState& state_;
  ResultQueue& results_;
  RateController rate_;
  std::mt19937_64 rng_;
  std::size_t max_inputs_;      // per request
  std::size_t backlog_target_;  // fresh pieces to keep at hand

  std::deque<PieceRef> fresh_;                       // not sent yet
  std::deque<Batch> ready_;                          // retries due now and bisected halves
  std::multimap<Clock::time_point, Batch> delayed_;  // retries waiting for their time
  std::optional<Batch> next_;                        // packed, waiting for admission
  std::unordered_map<std::uint64_t, Batch> in_flight_;
  std::uint64_t last_ticket_ = 0;

  CircuitBreaker breaker_;
  bool paused_ = false;     // --follow and the breaker is open
  bool probe_out_ = false;  // the probe is in flight
  int probes_ = 0;          // probes sent since the pause began
  Clock::time_point paused_since_{};
  Clock::time_point next_probe_{};
};

}  // namespace lens::pipeline
