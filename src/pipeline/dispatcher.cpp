// The dispatch loop on the run's calling thread: pack, admit, submit, poll, and act on
// each completion (accept, bisect, retry, record, or stop the run).
#include "pipeline/dispatcher.h"

#include <algorithm>
#include <thread>

#include "util/log.h"
#include "util/redact.h"
#include "util/vector_math.h"

namespace lens::pipeline {

using util::ErrorCode;

Dispatcher::Dispatcher(const RunOptions& options, provider::Provider& provider, RunState& state,
                       ResultQueue& results)
    : options_(options),
      provider_(provider),
      state_(state),
      results_(results),
      rate_(options.rate, options.max_concurrency),
      rng_(std::random_device{}()),
      max_inputs_(std::clamp<std::size_t>(
          options.batch_size, 1,
          static_cast<std::size_t>(std::max(1, options.model.max_inputs_per_request)))),
      // Enough queued pieces to fill every slot of the window with a full batch.
      backlog_target_(max_inputs_ * static_cast<std::size_t>(std::max(1, options.max_concurrency)) * 2) {}

bool Dispatcher::run(WorkQueue& work, const std::function<void()>& tick) {
  std::optional<Clock::time_point> drain_deadline;
  while (true) {
    const auto now = Clock::now();
    if (state_.has_fatal()) {
      abandon_in_flight();
      return false;
    }
    if (state_.stopping()) {
      if (!drain_deadline) drain_deadline = now + options_.drain_timeout;
      if (in_flight_.empty()) return false;
      if (now > *drain_deadline) {
        abandon_in_flight();
        return false;
      }
    } else {
      // Take fresh work while there is room for it.
      while (fresh_.size() < backlog_target_) {
        auto input = work.try_pop();
        if (!input) break;
        take(std::move(*input));
      }
      while (!delayed_.empty() && delayed_.begin()->first <= now) {
        ready_.push_back(std::move(delayed_.begin()->second));
        delayed_.erase(delayed_.begin());
      }
      submit_what_fits(now);
    }

    if (!state_.stopping() && in_flight_.empty() && ready_.empty() && fresh_.empty() && !next_) {
      if (delayed_.empty() && work.closed_and_empty()) return true;
      if (delayed_.empty()) {
        // Idle: block on the reader instead of spinning.
        if (auto input = work.pop_for(std::chrono::milliseconds(100))) take(std::move(*input));
        tick();
        continue;
      }
    }

    auto timeout = std::chrono::milliseconds(50);
    if (!delayed_.empty()) {
      timeout = std::min(timeout, std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::max(Clock::duration::zero(), delayed_.begin()->first - now)));
    }
    if (next_ && rate_.in_flight() < rate_.concurrency_limit()) {
      timeout = std::min(timeout, std::chrono::duration_cast<std::chrono::milliseconds>(
                                      rate_.wait_hint(next_->tokens, now)));
    }
    if (in_flight_.empty()) {
      if (timeout.count() > 0) std::this_thread::sleep_for(timeout);
    } else {
      for (auto& c : provider_.poll(timeout))
        handle(std::move(c));
    }
    tick();
  }
}

void Dispatcher::take(PreparedInput input) {
  auto job = std::make_shared<Job>();
  job->input = std::move(input);
  for (std::uint32_t i = 0; i < job->input.pieces.size(); ++i)
    fresh_.push_back({job, i});
}

void Dispatcher::submit_what_fits(Clock::time_point now) {
  while (true) {
    if (!next_) {
      if (!ready_.empty()) {
        next_ = std::move(ready_.front());
        ready_.pop_front();
      } else if (!fresh_.empty()) {
        next_ = pack();
      } else {
        return;
      }
    }
    if (!rate_.try_admit(next_->tokens, now)) return;
    send(std::move(*next_));
    next_.reset();
  }
}

// Fills a request from fresh pieces within the input, exact-token and byte caps.
Dispatcher::Batch Dispatcher::pack() {
  Batch b;
  std::int64_t bytes = 0;
  const std::int64_t cap = options_.model.max_request_tokens;
  while (!fresh_.empty() && b.pieces.size() < max_inputs_) {
    const auto& piece = fresh_.front().get();
    const auto piece_bytes = static_cast<std::int64_t>(piece.size);
    const bool over = b.tokens + piece.tokens > cap || (bytes + piece_bytes) / 4 > cap;
    if (!b.pieces.empty() && over) break;
    b.tokens += piece.tokens;
    bytes += piece_bytes;
    b.pieces.push_back(std::move(fresh_.front()));
    fresh_.pop_front();
  }
  return b;
}

void Dispatcher::send(Batch batch) {
  const std::uint64_t ticket = ++last_ticket_;
  provider::EmbedRequest req;
  req.ticket = ticket;
  req.dimensions = options_.dimensions;
  req.inputs.reserve(batch.pieces.size());
  // The views stay valid: the batch (and so its jobs) lives in in_flight_ until the answer
  // is handled or cancel_all() is called.
  for (const auto& p : batch.pieces)
    req.inputs.push_back(p.text());
  in_flight_.emplace(ticket, std::move(batch));
  provider_.submit(std::move(req));
}

void Dispatcher::handle(provider::Completion&& c) {
  auto it = in_flight_.find(c.ticket);
  if (it == in_flight_.end()) return;  // abandoned earlier
  Batch batch = std::move(it->second);
  in_flight_.erase(it);
  ++state_.counters.requests;
  const auto now = Clock::now();
  if (c.result) {
    rate_.on_complete(c.rate, false, std::nullopt, now);
    accept(batch, *c.result);
    return;
  }
  const provider::EmbedFailure& f = c.result.error();
  const bool limited = f.error.code == ErrorCode::rate_limited;
  if (limited) ++state_.counters.rate_limited;
  rate_.on_complete(c.rate, limited, f.retry_after, now);
  on_failure(std::move(batch), f, now);
}

void Dispatcher::on_failure(Batch batch, const provider::EmbedFailure& f, Clock::time_point now) {
  switch (f.error.code) {
    case ErrorCode::fatal:
    case ErrorCode::invalid_argument:
    case ErrorCode::configuration:
    case ErrorCode::not_found:
      state_.set_fatal(f.error);
      return;
    case ErrorCode::bad_input:
      if (batch.pieces.size() > 1) {
        // Bisect: only the inputs that are bad on their own end up as failures.
        const auto half = static_cast<std::ptrdiff_t>(batch.pieces.size() / 2);
        Batch left, right;
        left.pieces.assign(batch.pieces.begin(), batch.pieces.begin() + half);
        right.pieces.assign(batch.pieces.begin() + half, batch.pieces.end());
        for (Batch* b : {&left, &right}) {
          for (const auto& p : b->pieces)
            b->tokens += p.get().tokens;
        }
        ready_.push_front(std::move(right));
        ready_.push_front(std::move(left));
      } else {
        fail_batch(
            batch,
            f.context_length ? core::FailureReason::context_length : core::FailureReason::provider_rejected,
            f.error.message);
      }
      return;
    default:
      break;
  }
  if (!f.error.is_retryable()) {
    fail_batch(batch, core::FailureReason::provider_rejected, f.error.message);
    return;
  }
  // A 429 is the provider pacing us, not a fault of the request: it is retried after the
  // advised delay and never counts toward --max-attempts (docs/OPERATIONS.md).
  if (f.error.code == ErrorCode::rate_limited) {
    ++batch.throttled;
    ++state_.counters.retries;
    const auto delay =
        f.retry_after ? *f.retry_after : util::full_jitter(options_.backoff, batch.throttled, rng_);
    delayed_.emplace(now + delay, std::move(batch));
    return;
  }
  ++batch.attempts;
  if (batch.attempts >= options_.max_attempts) {
    util::log_warn("model {}: giving up on a request of {} inputs after {} attempts (HTTP {}): {}",
                   options_.model.name, batch.pieces.size(), batch.attempts, f.http_status,
                   f.error.message.substr(0, 300));
    fail_batch(batch,
               f.error.code == ErrorCode::invalid_response ? core::FailureReason::invalid_response
                                                           : core::FailureReason::retries_exhausted,
               fmt::format("after {} attempts: {}", batch.attempts, f.error.message));
    return;
  }
  ++state_.counters.retries;
  const auto delay =
      f.retry_after ? *f.retry_after : util::full_jitter(options_.backoff, batch.attempts, rng_);
  delayed_.emplace(now + delay, std::move(batch));
}

void Dispatcher::accept(const Batch& batch, const provider::EmbedSuccess& ok) {
  const auto dims = static_cast<std::size_t>(ok.dimensions);
  // The provider validates its answers; a mismatch here is our bug, never a misfiled vector.
  if (dims == 0 || ok.vectors.size() != batch.pieces.size() * dims ||
      (options_.dimensions && *options_.dimensions != ok.dimensions)) {
    fail_batch(batch, core::FailureReason::invalid_response,
               fmt::format("provider returned {} values of {} dimensions for {} inputs", ok.vectors.size(),
                           ok.dimensions, batch.pieces.size()));
    return;
  }
  for (std::size_t i = 0; i < batch.pieces.size(); ++i) {
    const PieceRef& ref = batch.pieces[i];
    Job& job = *ref.job;
    if (job.failed) continue;
    const std::span<const float> v(ok.vectors.data() + i * dims, dims);
    if (job.input.pieces.size() == 1) {
      finish(job, std::vector<float>(v.begin(), v.end()));
      continue;
    }
    // Chunked: token-weighted mean of the chunk vectors, renormalized at the end.
    if (job.sum.empty()) job.sum.assign(dims, 0.0f);
    if (job.sum.size() != dims) {
      fail_job(job, core::FailureReason::invalid_response, "chunks came back with different dimensions");
      continue;
    }
    util::add_weighted(job.sum, v, static_cast<float>(ref.get().tokens));
    if (++job.pieces_done == job.input.pieces.size()) {
      util::normalize(job.sum);
      finish(job, std::move(job.sum));
    }
  }
}

void Dispatcher::finish(Job& job, std::vector<float> vector) {
  results_.push(make_row(job.input, std::move(vector)));
}

void Dispatcher::fail_batch(const Batch& batch, core::FailureReason reason, const std::string& detail) {
  for (const auto& p : batch.pieces)
    fail_job(*p.job, reason, detail);
}

void Dispatcher::fail_job(Job& job, core::FailureReason reason, const std::string& detail) {
  if (job.failed) return;
  job.failed = true;
  results_.push(make_failure(job.input, reason, util::redact(detail)));
}

void Dispatcher::abandon_in_flight() {
  // Cancel first: the provider holds views into the inputs that in_flight_ keeps alive.
  provider_.cancel_all();
  for (std::size_t i = 0; i < in_flight_.size(); ++i)
    rate_.on_abandon();
  in_flight_.clear();
}

}  // namespace lens::pipeline
