// The run loop: reader and writer threads around the dispatcher on the calling thread.
#include "pipeline/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <variant>

#include "core/input_text.h"
#include "pipeline/rate_controller.h"
#include "util/bounded_queue.h"
#include "util/log.h"
#include "util/redact.h"
#include "util/utf8.h"

namespace lens::pipeline {
namespace {

using Clock = std::chrono::steady_clock;
using util::ErrorCode;

// Counters written from several threads; a snapshot is a RunStats.
struct SharedStats {
  std::atomic<std::int64_t> embedded{0}, unchanged{0}, failed{0}, truncated{0}, tokens{0}, requests{0},
      retries{0}, rate_limited{0};

  core::RunStats snapshot() const {
    core::RunStats s;
    s.embedded = embedded;
    s.unchanged = unchanged;
    s.failed = failed;
    s.truncated = truncated;
    s.tokens = tokens;
    s.requests = requests;
    s.retries = retries;
    s.rate_limited = rate_limited;
    return s;
  }
};

// One exchange on its way through the dispatcher. Pieces are views into `input`
// (one piece, or several with --long-input chunk).
struct Item {
  std::string user_message_id;
  std::optional<std::string> assistant_message_id;
  std::string source_version;
  std::string input;
  util::Sha256 sha{};
  std::int32_t token_count = 0;
  bool truncated = false;
  struct Piece {
    std::string_view text;
    std::int64_t tokens = 0;
  };
  std::vector<Piece> pieces;
  // Chunked items: token-weighted sum of the piece vectors so far.
  std::vector<float> sum;
  std::size_t pieces_done = 0;
  bool failed = false;
};

struct PieceRef {
  std::shared_ptr<Item> item;
  std::uint32_t piece = 0;
  [[nodiscard]] const Item::Piece& get() const { return item->pieces[piece]; }
};

struct Batch {
  std::vector<PieceRef> pieces;
  std::int64_t tokens = 0;
  int attempts = 0;  // sends that ended in a retryable failure
};

using WriterMessage = std::variant<core::EmbeddingRow, core::RowTouch, core::Failure>;

// Retries a store call on transient errors (lost connection, busy database) with capped
// backoff for up to five minutes. A stop request does not cut it short: what arrived
// must be committed, and the cli's second signal exits at once anyway.
template <typename F>
auto with_store_retries(F&& call, std::string_view what) -> decltype(call()) {
  std::mt19937_64 rng(std::random_device{}());
  const util::BackoffPolicy policy{std::chrono::milliseconds(200), std::chrono::milliseconds(10'000)};
  const auto give_up_at = Clock::now() + std::chrono::minutes(5);
  for (int attempt = 1;; ++attempt) {
    auto result = call();
    if (result || !result.error().is_retryable() || Clock::now() > give_up_at) return result;
    util::log_warn("{} failed ({}), retrying: {}", what, util::to_string(result.error().code),
                   result.error().message);
    std::this_thread::sleep_for(util::full_jitter(policy, attempt, rng));
  }
}

class Run {
 public:
  Run(const RunOptions& options, RunDeps& deps)
      : options_(options),
        deps_(deps),
        work_(std::max<std::size_t>(options.batch_size * 4, 1024)),
        results_(4096),
        rate_(options.rate, options.max_concurrency),
        rng_(std::random_device{}()) {}

  RunOutcome execute() {
    const auto started = Clock::now();
    RunOutcome outcome;
    if (!options_.dry_run) {
      auto run_id = with_store_retries(
          [&] {
            return deps_.writer.begin_run(
                {options_.scope.provider, options_.scope.model, deps_.run_arguments, deps_.worker});
          },
          "recording the run");
      if (!run_id) {
        outcome.fatal = run_id.error();
        return outcome;
      }
      run_id_ = *run_id;
      outcome.run_id = run_id_;
    }
    if (deps_.progress) {
      auto total = deps_.reader.count_pending(options_.scope);
      if (total) total_ = options_.limit ? std::min(*total, *options_.limit) : *total;
    }
    started_ = started;

    std::thread reader([this] { read_loop(); });
    std::thread writer;
    if (!options_.dry_run) writer = std::thread([this] { write_loop(); });

    if (options_.dry_run) {
      // Nothing to dispatch: drain so the reader never blocks (it does not push anyway).
      while (work_.pop()) {
      }
    } else {
      dispatch_loop();
    }
    work_.close();
    reader.join();
    results_.close();
    if (writer.joinable()) writer.join();
    // Hand back what this worker claimed but did not write, so other workers need not
    // wait for the lease to expire. Best effort: an expired lease does the same later.
    for (store::Store* s : {&deps_.reader, &deps_.writer}) {
      if (auto r = s->release_claims(); !r) util::log_warn("releasing claims: {}", r.error().message);
    }

    outcome.stats = stats_.snapshot();
    outcome.seconds = std::chrono::duration<double>(Clock::now() - started).count();
    {
      std::lock_guard lock(fatal_mutex_);
      outcome.fatal = fatal_;
    }
    outcome.interrupted = stopping() && !outcome.fatal && !complete_;
    if (options_.dry_run) outcome.dry_run = dry_;
    report_progress(true);
    if (!options_.dry_run) {
      const core::RunStatus status = outcome.fatal         ? core::RunStatus::failed
                                     : outcome.interrupted ? core::RunStatus::interrupted
                                                           : core::RunStatus::completed;
      auto s = with_store_retries([&] { return deps_.writer.finish_run(run_id_, status, outcome.stats); },
                                  "recording the end of the run");
      if (!s && !outcome.fatal) outcome.fatal = s.error();
    }
    return outcome;
  }

 private:
  // ---------------------------------------------------------------- reader thread
  void read_loop() {
    store::PendingCursor cursor;
    std::int64_t accepted = 0;
    bool done = false;
    while (!done && !stopping() && !has_fatal()) {
      auto page = with_store_retries(
          [&] { return deps_.reader.next_pending(options_.scope, cursor, options_.page_size); },
          "reading pending work");
      if (!page) {
        set_fatal(page.error());
        break;
      }
      for (auto& ex : page->items) {
        if (stopping() || has_fatal()) break;
        if (options_.limit && accepted >= *options_.limit) {
          done = true;
          break;
        }
        if (prepare(std::move(ex))) ++accepted;
      }
      if (page->exhausted) done = true;
    }
    if (done && !stopping() && !has_fatal()) reader_finished_ = true;
    work_.close();
  }

  // Builds the input of one exchange and routes it. Returns true when it counts toward
  // --limit (it will be embedded).
  bool prepare(core::Exchange&& ex) {
    auto item = std::make_shared<Item>();
    item->input = core::build_input_text(ex);
    item->user_message_id = std::move(ex.user_message_id);
    item->assistant_message_id = std::move(ex.assistant_message_id);
    item->source_version = std::move(ex.source_version);

    if (util::is_blank(ex.user_content)) {
      // Blank by Unicode's White_Space but not by SQL's trim(): recorded once, so the
      // store stops offering it until it is edited.
      ++dry_.blank;
      if (!options_.dry_run) {
        emit(core::Failure{item->user_message_id, core::FailureReason::empty_input,
                           "user message content is only white space", item->source_version});
      }
      return false;
    }

    const auto& tok = deps_.tokenizer;
    const auto max_tokens = static_cast<std::size_t>(std::max(1, options_.model.max_input_tokens));
    std::size_t count = tok.count(item->input);
    bool chunked = false;
    if (count > max_tokens) {
      if (options_.long_input == LongInput::chunk) {
        chunked = true;
        ++dry_.chunked;
      } else {
        item->input.resize(tok.truncate(item->input, max_tokens).size());
        count = tok.count(item->input);
        item->truncated = true;
        ++dry_.truncated;
      }
    }
    item->token_count = static_cast<std::int32_t>(count);
    item->sha = util::sha256(item->input);

    if (!options_.scope.force && ex.stored_sha256 && *ex.stored_sha256 == item->sha) {
      ++dry_.unchanged;
      if (!options_.dry_run) {
        emit(core::RowTouch{item->user_message_id, item->assistant_message_id, item->source_version});
      }
      return false;
    }

    ++dry_.exchanges;
    ++(ex.stored_sha256 ? dry_.stale_rows : dry_.new_rows);
    dry_.tokens += static_cast<std::int64_t>(count);
    if (options_.dry_run) return true;

    if (chunked) {
      const std::size_t overlap = std::min(options_.chunk_overlap_tokens, max_tokens / 2);
      for (std::string_view piece : tok.chunk(item->input, max_tokens, overlap)) {
        item->pieces.push_back({piece, static_cast<std::int64_t>(tok.count(piece))});
      }
    } else {
      item->pieces.push_back({item->input, static_cast<std::int64_t>(count)});
    }
    if (item->truncated) ++stats_.truncated;
    return work_.push(std::move(item));
  }

  // ---------------------------------------------------------------- dispatcher
  void dispatch_loop() {
    const std::size_t max_inputs = std::clamp<std::size_t>(
        options_.batch_size, 1, static_cast<std::size_t>(std::max(1, options_.model.max_inputs_per_request)));
    // Enough queued pieces to fill every slot of the window with a full batch.
    const std::size_t backlog_target =
        max_inputs * static_cast<std::size_t>(std::max(1, options_.max_concurrency)) * 2;
    auto last_progress = Clock::now();
    std::optional<Clock::time_point> drain_deadline;

    while (true) {
      const auto now = Clock::now();
      if (has_fatal()) {
        abandon_in_flight();
        break;
      }
      if (stopping()) {
        if (!drain_deadline) drain_deadline = now + options_.drain_timeout;
        if (in_flight_.empty()) break;
        if (now > *drain_deadline) {
          abandon_in_flight();
          break;
        }
      } else {
        // Take fresh work while there is room for it.
        while (fresh_.size() < backlog_target) {
          auto item = work_.try_pop();
          if (!item) break;
          for (std::uint32_t i = 0; i < (*item)->pieces.size(); ++i)
            fresh_.push_back({*item, i});
        }
        while (!delayed_.empty() && delayed_.begin()->first <= now) {
          ready_.push_back(std::move(delayed_.begin()->second));
          delayed_.erase(delayed_.begin());
        }
        submit_what_fits(max_inputs, now);
      }

      if (!stopping() && in_flight_.empty() && ready_.empty() && fresh_.empty() && !next_) {
        if (delayed_.empty() && work_.closed_and_empty()) {
          complete_ = reader_finished_.load();
          break;
        }
        if (delayed_.empty()) {
          // Idle: block on the reader instead of spinning.
          if (auto item = work_.pop_for(std::chrono::milliseconds(100))) {
            for (std::uint32_t i = 0; i < (*item)->pieces.size(); ++i)
              fresh_.push_back({*item, i});
          }
          maybe_report(last_progress);
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
        for (auto& c : deps_.provider.poll(timeout))
          handle(std::move(c));
      }
      maybe_report(last_progress);
    }
  }

  void submit_what_fits(std::size_t max_inputs, Clock::time_point now) {
    while (true) {
      if (!next_) {
        if (!ready_.empty()) {
          next_ = std::move(ready_.front());
          ready_.pop_front();
        } else if (!fresh_.empty()) {
          next_ = pack(max_inputs);
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
  Batch pack(std::size_t max_inputs) {
    Batch b;
    std::int64_t bytes = 0;
    const std::int64_t cap = options_.model.max_request_tokens;
    while (!fresh_.empty() && b.pieces.size() < max_inputs) {
      const auto& piece = fresh_.front().get();
      const auto piece_bytes = static_cast<std::int64_t>(piece.text.size());
      const bool over = b.tokens + piece.tokens > cap || (bytes + piece_bytes) / 4 > cap;
      if (!b.pieces.empty() && over) break;
      b.tokens += piece.tokens;
      bytes += piece_bytes;
      b.pieces.push_back(std::move(fresh_.front()));
      fresh_.pop_front();
    }
    return b;
  }

  void send(Batch batch) {
    const std::uint64_t ticket = ++last_ticket_;
    provider::EmbedRequest req;
    req.ticket = ticket;
    req.dimensions = options_.dimensions;
    req.inputs.reserve(batch.pieces.size());
    for (const auto& p : batch.pieces)
      req.inputs.push_back(p.get().text);
    in_flight_.emplace(ticket, std::move(batch));
    deps_.provider.submit(std::move(req));
  }

  void handle(provider::Completion&& c) {
    auto it = in_flight_.find(c.ticket);
    if (it == in_flight_.end()) return;  // abandoned earlier
    Batch batch = std::move(it->second);
    in_flight_.erase(it);
    ++stats_.requests;
    const auto now = Clock::now();

    if (c.result) {
      rate_.on_complete(c.rate, false, std::nullopt, now);
      accept(batch, *c.result);
      return;
    }
    const provider::EmbedFailure& f = c.result.error();
    const bool limited = f.error.code == ErrorCode::rate_limited;
    if (limited) ++stats_.rate_limited;
    rate_.on_complete(c.rate, limited, f.retry_after, now);

    switch (f.error.code) {
      case ErrorCode::fatal:
      case ErrorCode::invalid_argument:
      case ErrorCode::configuration:
      case ErrorCode::not_found:
        set_fatal(f.error);
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
    ++stats_.retries;
    const auto delay =
        f.retry_after ? *f.retry_after : util::full_jitter(options_.backoff, batch.attempts, rng_);
    delayed_.emplace(now + delay, std::move(batch));
  }

  void accept(const Batch& batch, const provider::EmbedSuccess& ok) {
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
      Item& item = *ref.item;
      if (item.failed) continue;
      const float* v = ok.vectors.data() + i * dims;
      if (item.pieces.size() == 1) {
        finish(item, std::vector<float>(v, v + dims));
        continue;
      }
      // Chunked: token-weighted mean of the chunk vectors, renormalized at the end.
      if (item.sum.empty()) item.sum.assign(dims, 0.0f);
      if (item.sum.size() != dims) {
        fail_item(item, core::FailureReason::invalid_response, "chunks came back with different dimensions");
        continue;
      }
      const auto w = static_cast<float>(ref.get().tokens);
      for (std::size_t d = 0; d < dims; ++d)
        item.sum[d] += w * v[d];
      if (++item.pieces_done == item.pieces.size()) {
        double norm = 0;
        for (float x : item.sum)
          norm += static_cast<double>(x) * x;
        if (norm > 0) {
          const auto inv = static_cast<float>(1.0 / std::sqrt(norm));
          for (float& x : item.sum)
            x *= inv;
        }
        finish(item, std::move(item.sum));
      }
    }
  }

  void finish(Item& item, std::vector<float> vector) {
    core::EmbeddingRow row;
    row.user_message_id = item.user_message_id;
    row.assistant_message_id = item.assistant_message_id;
    row.content_sha256 = item.sha;
    row.token_count = item.token_count;
    row.truncated = item.truncated;
    row.source_version = item.source_version;
    row.embedding = std::move(vector);
    emit(std::move(row));
  }

  void fail_batch(const Batch& batch, core::FailureReason reason, const std::string& detail) {
    for (const auto& p : batch.pieces)
      fail_item(*p.item, reason, detail);
  }

  void fail_item(Item& item, core::FailureReason reason, const std::string& detail) {
    if (item.failed) return;
    item.failed = true;
    emit(core::Failure{item.user_message_id, reason, util::redact(detail), item.source_version});
  }

  void abandon_in_flight() {
    for (std::size_t i = 0; i < in_flight_.size(); ++i)
      rate_.on_abandon();
    in_flight_.clear();
    deps_.provider.cancel_all();
  }

  // ---------------------------------------------------------------- writer thread
  void write_loop() {
    store::WriteBatch batch;
    batch.run_id = run_id_;
    batch.provider = options_.scope.provider;
    batch.model = options_.scope.model;
    std::int64_t batch_embedded = 0, batch_tokens = 0;
    auto first_at = Clock::now();
    const auto flush_after = std::chrono::milliseconds(250);

    auto size = [&] { return batch.rows.size() + batch.touches.size() + batch.failures.size(); };
    auto flush = [&]() -> bool {
      if (size() == 0) return true;
      // Counters as they will be once this commits: the runs table never runs ahead.
      batch.progress = stats_.snapshot();
      batch.progress.embedded += batch_embedded;
      batch.progress.tokens += batch_tokens;
      batch.progress.unchanged += static_cast<std::int64_t>(batch.touches.size());
      batch.progress.failed += static_cast<std::int64_t>(batch.failures.size());
      const auto write_started = Clock::now();
      auto s = with_store_retries([&] { return deps_.writer.write_batch(batch); }, "writing a batch");
      util::log_debug("wrote {} rows, {} touches, {} failures in {:.1f} ms", batch.rows.size(),
                      batch.touches.size(), batch.failures.size(),
                      std::chrono::duration<double, std::milli>(Clock::now() - write_started).count());
      if (!s) {
        set_fatal(s.error());
        return false;
      }
      stats_.embedded += batch_embedded;
      stats_.tokens += batch_tokens;
      stats_.unchanged += static_cast<std::int64_t>(batch.touches.size());
      stats_.failed += static_cast<std::int64_t>(batch.failures.size());
      batch.rows.clear();
      batch.touches.clear();
      batch.failures.clear();
      batch_embedded = batch_tokens = 0;
      return true;
    };

    while (true) {
      auto msg = results_.pop_for(std::chrono::milliseconds(50));
      if (msg) {
        if (size() == 0) first_at = Clock::now();
        if (auto* row = std::get_if<core::EmbeddingRow>(&*msg)) {
          ++batch_embedded;
          batch_tokens += row->token_count;
          batch.rows.push_back(std::move(*row));
        } else if (auto* touch = std::get_if<core::RowTouch>(&*msg)) {
          batch.touches.push_back(std::move(*touch));
        } else {
          batch.failures.push_back(std::move(std::get<core::Failure>(*msg)));
        }
      }
      const bool closed = !msg && results_.closed_and_empty();
      if (size() >= options_.rows_per_transaction || (size() > 0 && Clock::now() - first_at > flush_after) ||
          closed) {
        if (!flush()) break;
      }
      if (closed) break;
    }
    // After a fatal write error nothing more can be committed; let producers finish.
    while (results_.pop()) {
    }
  }

  void emit(WriterMessage msg) { results_.push(std::move(msg)); }

  // ---------------------------------------------------------------- shared
  bool stopping() const { return deps_.stop && deps_.stop->load() > 0; }
  bool has_fatal() const { return fatal_flag_.load(); }
  void set_fatal(const util::Error& e) {
    std::lock_guard lock(fatal_mutex_);
    if (!fatal_) fatal_ = e;
    fatal_flag_ = true;
  }

  void maybe_report(Clock::time_point& last) {
    const auto now = Clock::now();
    if (now - last < options_.progress_interval) return;
    last = now;
    report_progress(false);
  }

  void report_progress(bool final) {
    if (!deps_.progress) return;
    ProgressSnapshot s;
    s.stats = stats_.snapshot();
    s.total = total_;
    s.handled = s.stats.embedded + s.stats.unchanged + s.stats.failed;
    s.elapsed = Clock::now() - started_;
    s.in_flight = static_cast<int>(in_flight_.size());
    s.concurrency_limit = rate_.concurrency_limit();
    s.tpm_limit = options_.rate.tokens_per_minute;
    s.usd_spent = static_cast<double>(s.stats.tokens) * options_.model.usd_per_million_tokens / 1e6;
    // Tokens per minute over a sliding window of recent reports.
    const auto now = Clock::now();
    tpm_window_.emplace_back(now, s.stats.tokens);
    while (tpm_window_.size() > 2 && now - tpm_window_.front().first > std::chrono::seconds(10)) {
      tpm_window_.pop_front();
    }
    const auto span = std::chrono::duration<double>(now - tpm_window_.front().first).count();
    if (span > 0.2) {
      s.tokens_per_minute = static_cast<double>(s.stats.tokens - tpm_window_.front().second) / span * 60.0;
    }
    s.final = final;
    if (options_.dry_run) s.handled = dry_.exchanges;
    deps_.progress->on_progress(s);
  }

  const RunOptions& options_;
  RunDeps& deps_;
  util::BoundedQueue<std::shared_ptr<Item>> work_;
  util::BoundedQueue<WriterMessage> results_;
  RateController rate_;
  std::mt19937_64 rng_;
  SharedStats stats_;
  DryRunReport dry_;  // written by the reader only
  std::int64_t run_id_ = 0;
  std::int64_t total_ = -1;
  Clock::time_point started_;

  std::deque<PieceRef> fresh_;
  std::deque<Batch> ready_;                          // retries due now and bisected halves
  std::multimap<Clock::time_point, Batch> delayed_;  // retries waiting for their time
  std::optional<Batch> next_;                        // packed, waiting for admission
  std::unordered_map<std::uint64_t, Batch> in_flight_;
  std::uint64_t last_ticket_ = 0;
  std::deque<std::pair<Clock::time_point, std::int64_t>> tpm_window_;

  std::atomic<bool> reader_finished_{false};
  bool complete_ = false;
  std::atomic<bool> fatal_flag_{false};
  std::mutex fatal_mutex_;
  std::optional<util::Error> fatal_;
};

}  // namespace

RunOutcome run_pipeline(const RunOptions& options, RunDeps& deps) {
  Run run(options, deps);
  RunOutcome outcome = run.execute();
  if (!options.dry_run && outcome.dry_run) outcome.dry_run.reset();
  if (options.dry_run) {
    auto& d = *outcome.dry_run;
    d.usd = static_cast<double>(d.tokens) * options.model.usd_per_million_tokens / 1e6;
  }
  return outcome;
}

}  // namespace lens::pipeline
