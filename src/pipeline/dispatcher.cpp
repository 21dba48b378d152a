// The dispatch loop on the run's calling thread: pack, admit, submit, poll, and act on
// each completion (accept, bisect, retry, record, stop the run, or pause for an outage).
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
      backlog_target_(max_inputs_ * static_cast<std::size_t>(std::max(1, options.max_concurrency)) * 2),
      breaker_(options.unavailable_after) {}

bool Dispatcher::run(WorkQueue& work, const std::function<void()>& tick) {
  std::optional<Clock::time_point> drain_deadline;
  while (true) {
    const auto now = Clock::now();
    if (state_.has_fatal()) {
      abandon_in_flight();
      return false;
    }
    if (!paused_ && !state_.stopping() && breaker_.open(now)) {
      if (!options_.follow) {
        // Nothing is recorded for what was not sent or not answered: a later run does it.
        state_.set_fatal(util::Error{ErrorCode::transient, unavailable_message(now)});
        state_.observer().on_provider_available(false);
        continue;
      }
      pause(now);
    }
    if (state_.stopping()) {
      if (!drain_deadline) drain_deadline = now + options_.drain_timeout;
      if (in_flight_.empty()) return false;
      if (now > *drain_deadline) {
        abandon_in_flight();
        return false;
      }
    } else {
      // Take fresh work while there is room for it (also while paused: it waits here).
      while (fresh_.size() < backlog_target_) {
        auto input = work.try_pop();
        if (!input) break;
        take(std::move(*input));
      }
      if (paused_) {
        if (!probe_out_ && now >= next_probe_) send_probe(now);
      } else {
        while (!delayed_.empty() && delayed_.begin()->first <= now) {
          ready_.push_back(std::move(delayed_.begin()->second));
          delayed_.erase(delayed_.begin());
        }
        submit_what_fits(now);
      }
    }

    if (!state_.stopping() && !holds_work()) {
      if (work.closed_and_empty()) return true;
      // Idle: block on the reader instead of spinning.
      if (auto input = work.pop_for(std::chrono::milliseconds(100))) take(std::move(*input));
      tick();
      continue;
    }

    auto timeout = std::chrono::milliseconds(50);
    auto until = [&](Clock::time_point t) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(
          std::max(Clock::duration::zero(), t - now));
    };
    if (paused_) {
      if (!probe_out_) timeout = std::min(timeout, until(next_probe_));
    } else {
      if (!delayed_.empty()) timeout = std::min(timeout, until(delayed_.begin()->first));
      if (next_ && rate_.in_flight() < rate_.concurrency_limit()) {
        timeout = std::min(timeout, std::chrono::duration_cast<std::chrono::milliseconds>(
                                        rate_.wait_hint(next_->tokens, now)));
      }
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
  batch.sent_at = Clock::now();
  batch.admitted_after = rate_.admitted_tokens();  // send() follows its admission at once
  provider::EmbedRequest req;
  req.ticket = ticket;
  req.dimensions = options_.dimensions;
  req.expected_dimensions = options_.expected_dimensions;
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
  state_.observer().on_request({c.result ? 200 : c.result.error().http_status,
                                !c.result && c.result.error().error.code == ErrorCode::rate_limited,
                                now - batch.sent_at});
  if (c.result) {
    breaker_.on_answer(now);
    if (batch.probe) resume(now);
    rate_.on_complete(c.rate, false, std::nullopt, now, batch.admitted_after);
    accept(batch, *c.result);
    provider_.recycle(std::move(c.result->vectors));  // copied into the rows by now
    return;
  }
  const provider::EmbedFailure& f = c.result.error();
  const bool limited = f.error.code == ErrorCode::rate_limited;
  if (limited) ++state_.counters.rate_limited;
  rate_.on_complete(c.rate, limited, f.retry_after, now, batch.admitted_after);
  if (is_unavailable(f)) {
    on_unavailable(std::move(batch), f, now);
    return;
  }
  // Any other answer (400, 429, a garbled 200) shows the provider is there.
  breaker_.on_answer(now);
  if (batch.probe) resume(now);
  on_failure(std::move(batch), f, now);
}

void Dispatcher::on_unavailable(Batch batch, const provider::EmbedFailure& f, Clock::time_point now) {
  // Asked before on_unavailable: whether the provider served others while this was out.
  const bool about_this_request = breaker_.answered_since(batch.sent_at);
  breaker_.on_unavailable(batch.sent_at, f);
  util::log_debug("model {}: provider unavailable for a request of {} inputs (HTTP {}): {}",
                  options_.model.name, batch.pieces.size(), f.http_status, f.error.message.substr(0, 300));
  if (batch.probe) {
    probe_out_ = false;
    batch.probe = false;
    ++probes_;
    next_probe_ = now + probe_delay(probes_);
    ready_.push_front(std::move(batch));
    return;
  }
  if (about_this_request) {
    // A 5xx or a timeout for this request while others succeed: it may be this input
    // that the server cannot serve, so it counts as an attempt (and cannot loop forever).
    on_failure(std::move(batch), f, now);
    return;
  }
  retry_later(std::move(batch), f, now);
}

void Dispatcher::retry_later(Batch batch, const provider::EmbedFailure& f, Clock::time_point now) {
  ++state_.counters.retries;
  state_.observer().on_retry();
  ++batch.waits;
  const auto delay = f.retry_after ? *f.retry_after : util::full_jitter(options_.backoff, batch.waits, rng_);
  delayed_.emplace(now + delay, std::move(batch));
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
  if (f.error.code == ErrorCode::rate_limited) {
    // A rate limit says nothing against the inputs: wait as advised, never give up on them.
    retry_later(std::move(batch), f, now);
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
  state_.observer().on_retry();
  const auto delay =
      f.retry_after ? *f.retry_after : util::full_jitter(options_.backoff, batch.attempts, rng_);
  delayed_.emplace(now + delay, std::move(batch));
}

void Dispatcher::accept(const Batch& batch, const provider::EmbedSuccess& ok) {
  const auto dims = static_cast<std::size_t>(ok.dimensions);
  // The provider validates its answers; a mismatch here is our bug, never a misfiled vector.
  if (dims == 0 || ok.vectors.size() != batch.pieces.size() * dims ||
      (options_.expected_dimensions && *options_.expected_dimensions != ok.dimensions)) {
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

void Dispatcher::pause(Clock::time_point now) {
  paused_ = true;
  state_.observer().on_provider_available(false);
  probe_out_ = false;
  probes_ = 0;
  paused_since_ = now - breaker_.down_for(now);
  next_probe_ = now + probe_delay(0);
  util::log_warn("{}; waiting for it (--follow): probing with one input, then resuming by itself",
                 unavailable_message(now));
  // Everything comes back to be sent once the provider answers: nothing is recorded.
  provider_.cancel_all();
  for (auto& [ticket, batch] : in_flight_) {
    rate_.on_abandon();
    ready_.push_back(std::move(batch));
  }
  in_flight_.clear();
  if (next_) {
    ready_.push_front(std::move(*next_));
    next_.reset();
  }
  for (auto& [when, batch] : delayed_)
    ready_.push_back(std::move(batch));
  delayed_.clear();
}

void Dispatcher::send_probe(Clock::time_point now) {
  // One input: the smallest request that tells whether the provider serves again.
  PieceRef piece;
  if (!ready_.empty()) {
    piece = ready_.front().pieces.front();
  } else if (!fresh_.empty()) {
    piece = fresh_.front();
  } else {
    return;  // nothing to send: the next input that arrives is the probe
  }
  if (!rate_.try_admit(piece.get().tokens, now)) return;
  if (!ready_.empty()) {
    Batch& from = ready_.front();
    from.pieces.erase(from.pieces.begin());
    from.tokens -= piece.get().tokens;
    if (from.pieces.empty()) ready_.pop_front();
  } else {
    fresh_.pop_front();
  }
  Batch probe;
  probe.tokens = piece.get().tokens;
  probe.pieces.push_back(std::move(piece));
  probe.probe = true;
  probe_out_ = true;
  util::log_debug("provider probe {} (paused {:.0f} s)", probes_ + 1,
                  std::chrono::duration<double>(now - paused_since_).count());
  send(std::move(probe));
}

void Dispatcher::resume(Clock::time_point now) {
  if (!paused_) return;
  paused_ = false;
  probe_out_ = false;
  state_.observer().on_provider_available(true);
  util::log_warn("provider answers again after {:.0f} s; resuming",
                 std::chrono::duration<double>(now - paused_since_).count());
}

std::chrono::milliseconds Dispatcher::probe_delay(int probes) {
  // Doubling from 1 s up to the cap, half of it jittered so workers that paused together
  // do not probe in step.
  const auto cap = std::max<std::chrono::milliseconds>(options_.probe_cap, std::chrono::milliseconds(1));
  const auto full =
      std::min<std::chrono::milliseconds>(cap, std::chrono::milliseconds(1000LL << std::min(probes, 16)));
  std::uniform_int_distribution<std::int64_t> half(0, full.count() / 2);
  return std::chrono::milliseconds(full.count() - full.count() / 2 + half(rng_));
}

std::string Dispatcher::unavailable_message(Clock::time_point now) const {
  const provider::EmbedFailure& f = breaker_.last_failure();
  std::string check;
  switch (unavailable_kind(f)) {
    case UnavailableKind::no_answer:
      check = fmt::format(
          "check {}", options_.endpoint_hint.empty() ? "the provider's base URL" : options_.endpoint_hint);
      break;
    case UnavailableKind::timeout:
      check = "check that the provider is up (requests time out after --timeout)";
      break;
    case UnavailableKind::server_error:
      check = "the provider is failing (HTTP 5xx); check its status";
      break;
  }
  const auto down = std::chrono::duration_cast<std::chrono::seconds>(breaker_.down_for(now)).count();
  return fmt::format(
      "provider unavailable: {} ({} requests in a row failed like this over {} s); {} (or raise "
      "--unavailable-after, now {} s)",
      f.error.message.substr(0, 300), breaker_.streak(), down, check,
      std::chrono::duration_cast<std::chrono::seconds>(breaker_.unavailable_after()).count());
}

}  // namespace lens::pipeline
