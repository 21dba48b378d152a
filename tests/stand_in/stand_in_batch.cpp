// The stand-in Batch API's state machine, options, control and counters. Batches move on
// lazily: every call first brings all batches up to the present (advance_all), so what a
// client sees depends only on the options and the time since each batch was created.
#include "stand_in_batch.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <numeric>

#include "stand_in_batch_state.h"
#include "stand_in_billing.h"
#include "stand_in_common.h"

namespace lens::stand_in {
namespace {

std::uint64_t mix(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

template <typename T>
bool parse_number(std::string_view text, T& out) {
  if constexpr (std::is_same_v<T, bool>) {
    if (text == "1" || text == "true") return out = true, true;
    if (text == "0" || text == "false") return out = false, true;
    return false;
  } else {
    T v{};
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size()) return false;
    out = v;
    return true;
  }
}

}  // namespace

bool set_batch_option(BatchOptions& o, std::string_view key, std::string_view value) {
  auto fault = [&](std::string_view name, BatchFault& f) -> std::optional<bool> {
    if (!key.starts_with(name)) return std::nullopt;
    const std::string_view rest = key.substr(name.size());
    if (rest == "_next") return parse_number(value, f.next);
    if (rest == "_p") return parse_number(value, f.p);
    return std::nullopt;
  };
  for (auto [name, f] : {std::pair<std::string_view, BatchFault*>{"poll_503", &o.poll_503},
                         {"poll_reset", &o.poll_reset},
                         {"download_503", &o.download_503},
                         {"download_reset", &o.download_reset},
                         {"download_drop", &o.download_drop}}) {
    if (auto r = fault(name, *f)) return *r;
  }
  if (key == "enabled") return parse_number(value, o.enabled);
  if (key == "validating_ms") return parse_number(value, o.validating_ms);
  if (key == "completion_ms") return parse_number(value, o.completion_ms);
  if (key == "finalizing_ms") return parse_number(value, o.finalizing_ms);
  if (key == "expire_ms") return parse_number(value, o.expire_ms);
  if (key == "fail_validation") return parse_number(value, o.fail_validation);
  if (key == "shuffle_output") return parse_number(value, o.shuffle_output);
  if (key == "p_request_500") return parse_number(value, o.p_request_500);
  if (key == "queue_tokens") return parse_number(value, o.queue_tokens);
  if (key == "outputs_deleted") return parse_number(value, o.outputs_deleted);
  if (key == "download_reset_after_bytes") return parse_number(value, o.download_reset_after_bytes);
  if (key == "seed") return parse_number(value, o.seed);
  if (key == "files_dir") return o.files_dir = std::string(value), true;
  return false;
}

BatchService::BatchService(BatchOptions options, BatchHost host) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.host = std::move(host);
  m.o = std::move(options);
  m.rng.seed(m.o.seed);
}

std::string BatchService::Impl::uploads_dir() {
  if (!files_dir.empty()) return files_dir;
  // Made on the first upload, so a stand-in that never sees one leaves nothing behind.
  if (o.files_dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/lens_stand_in_batch_XXXXXX";
    if (::mkdtemp(pattern.data())) {
      files_dir = pattern;
      own_files_dir = true;
    }
  } else {
    std::error_code ec;
    std::filesystem::create_directories(o.files_dir, ec);
    files_dir = o.files_dir;
  }
  return files_dir;
}

BatchService::~BatchService() {
  stop();
  if (impl_->own_files_dir && !impl_->files_dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(impl_->files_dir, ec);
  }
}

void BatchService::stop() {
  std::lock_guard lock(impl_->mu);
  impl_->stopping = true;
}

void BatchService::update(const std::function<void(BatchOptions&)>& change) {
  std::lock_guard lock(impl_->mu);
  change(impl_->o);
}

void BatchService::complete(std::string_view batch_id) {
  Impl& m = *impl_;
  std::lock_guard lock(m.mu);
  m.advance_all(BatchClock::now());
  for (auto& [id, b] : m.batches) {
    if (batch_id.empty() || id == batch_id) b.force_complete = true;
  }
  m.advance_all(BatchClock::now());
}

void BatchService::expire(std::string_view batch_id, double fraction) {
  Impl& m = *impl_;
  std::lock_guard lock(m.mu);
  m.advance_all(BatchClock::now());
  for (auto& [id, b] : m.batches) {
    if (batch_id.empty() || id == batch_id) b.force_expire_fraction = std::clamp(fraction, 0.0, 1.0);
  }
  m.advance_all(BatchClock::now());
}

std::string BatchService::stats_fields() const {
  const Impl& m = *impl_;
  std::string s;
  {
    std::lock_guard lock(m.mu);
    for (const auto& [k, v] : m.counters)
      s += ",\"" + k + "\":" + std::to_string(v);
    s += ",\"batch_enqueued_tokens\":" + std::to_string(static_cast<long long>(m.enqueued_tokens()));
  }
  if (m.host.billing) {
    const Billing::Totals t = m.host.billing->totals();
    s += ",\"billed_sync_inputs\":" + std::to_string(t.sync_inputs) +
         ",\"billed_batch_inputs\":" + std::to_string(t.batch_inputs) +
         ",\"billed_batch_tokens\":" + std::to_string(t.batch_tokens) +
         ",\"billed_distinct_inputs\":" + std::to_string(t.distinct_inputs) +
         ",\"billed_more_than_once\":" + std::to_string(t.billed_more_than_once);
  }
  return s;
}

void BatchService::reset_stats() {
  std::lock_guard lock(impl_->mu);
  impl_->counters.clear();
  if (impl_->host.billing) impl_->host.billing->clear();
}

// ---- the state machine ----

bool BatchService::Impl::fire(BatchFault& f) {
  if (f.next > 0) {
    --f.next;
    return true;
  }
  return f.p > 0 && std::uniform_real_distribution<double>(0, 1)(rng) < f.p;
}

std::string BatchService::Impl::new_id(std::string_view prefix) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%012llx%06llx",
                static_cast<unsigned long long>(mix(o.seed) & 0xffffffffffffULL),
                static_cast<unsigned long long>(next_seq));
  return std::string(prefix) + buf;
}

double BatchService::Impl::enqueued_tokens() const {
  double sum = 0;
  for (const auto& [id, b] : batches) {
    if (b.status == "in_progress" || b.status == "finalizing")
      sum += static_cast<double>(b.input->total_tokens);
  }
  return sum;
}

std::size_t BatchService::Impl::progress(const BatchRec& b, double at_ms) const {
  const std::size_t n = b.if_processed.size();
  if (!b.in_progress_ms || o.completion_ms < 0) return 0;
  if (o.completion_ms == 0) return n;
  const double share = (at_ms - *b.in_progress_ms) / o.completion_ms;
  return std::min(n, static_cast<std::size_t>(std::max(0.0, std::floor(share * static_cast<double>(n)))));
}

std::pair<std::int64_t, std::int64_t> BatchService::Impl::counts(const BatchRec& b) const {
  const bool ended = b.completed_ms || b.expired_ms || b.cancelled_ms || b.finalizing_ms;
  const double now_ms = std::chrono::duration<double, std::milli>(BatchClock::now() - b.created).count();
  const std::size_t k = ended ? b.processed : progress(b, now_ms);
  std::int64_t ok = 0, bad = 0;
  for (std::size_t j = 0; j < k; ++j)
    (b.if_processed[b.processing[j]] == Outcome::ok ? ok : bad) += 1;
  if (b.expired_ms) bad += static_cast<std::int64_t>(b.if_processed.size() - b.processed);
  return {ok, bad};
}

void BatchService::Impl::start(BatchRec& b, double at_ms) {
  const std::size_t n = b.input->requests.size();
  b.status = "in_progress";
  b.in_progress_ms = at_ms;
  std::mt19937_64 r(b.seed);
  b.processing.resize(n);
  std::iota(b.processing.begin(), b.processing.end(), 0u);
  std::shuffle(b.processing.begin(), b.processing.end(), r);
  b.if_processed.resize(n);
  std::uniform_real_distribution<double> u(0, 1);
  for (std::size_t i = 0; i < n; ++i) {
    const bool fail500 = o.p_request_500 > 0 && u(r) < o.p_request_500;
    b.if_processed[i] = b.input->requests[i].over_limit ? Outcome::context_400
                        : fail500                       ? Outcome::error_500
                                                        : Outcome::ok;
  }
}

void BatchService::Impl::fail(BatchRec& b, double at_ms, std::vector<ValidationError> errors) {
  b.status = "failed";
  b.failed_ms = at_ms;
  b.errors = std::move(errors);
}

void BatchService::Impl::finish(BatchRec& b, double at_ms, std::size_t processed,
                                const std::string& final_status) {
  const std::size_t n = b.if_processed.size();
  b.processed = processed;
  auto spec = std::make_shared<ResultsSpec>();
  spec->input = b.input;
  spec->batch_id = b.id;
  spec->max_input_tokens = host.max_input_tokens;
  spec->default_dimensions = host.default_dimensions;
  spec->seed = b.seed;
  spec->outcomes.assign(n, final_status == "expired" ? Outcome::expired : Outcome::not_run);
  for (std::size_t j = 0; j < processed; ++j)
    spec->outcomes[b.processing[j]] = b.if_processed[b.processing[j]];
  spec->order.resize(n);
  std::iota(spec->order.begin(), spec->order.end(), 0u);
  if (o.shuffle_output) {
    std::mt19937_64 r(mix(b.seed));
    std::shuffle(spec->order.begin(), spec->order.end(), r);
  }
  std::size_t ok = 0, errors = 0;
  for (Outcome x : spec->outcomes) {
    ok += x == Outcome::ok;
    errors += x != Outcome::ok && x != Outcome::not_run;
    bump(x == Outcome::ok            ? "batch_requests_ok"
         : x == Outcome::context_400 ? "batch_requests_400"
         : x == Outcome::error_500   ? "batch_requests_500"
         : x == Outcome::expired     ? "batch_requests_expired"
                                     : "batch_requests_not_run");
  }
  if (host.billing) {
    for_each_ok_request(*spec, [&](const std::vector<std::string_view>& inputs, std::int64_t tokens) {
      for (std::size_t k = 0; k < inputs.size(); ++k)
        host.billing->add_batch(inputs[k], k == 0 ? tokens : 0);
    });
  }
  std::shared_ptr<const ResultsSpec> results = spec;
  auto add_file = [&](bool error_file) {
    FileRec f;
    f.id = new_id("file-");
    f.seq = next_seq++;
    f.filename = b.id + (error_file ? "_error.jsonl" : "_output.jsonl");
    f.purpose = "batch_output";
    f.created_at = b.created_unix + static_cast<std::int64_t>(at_ms / 1000);
    f.results = results;
    f.error_file = error_file;
    const std::string id = f.id;
    files.emplace(id, std::move(f));
    return id;
  };
  if (ok) b.output_file_id = add_file(false);
  if (errors) b.error_file_id = add_file(true);
  b.status = final_status;
  if (final_status == "completed") b.completed_ms = at_ms;
  if (final_status == "expired") b.expired_ms = at_ms;
  if (final_status == "cancelled") b.cancelled_ms = at_ms;
  bump("batch_" + final_status);
}

void BatchService::Impl::advance(BatchRec& b, BatchClock::time_point now) {
  const double now_ms = std::chrono::duration<double, std::milli>(now - b.created).count();
  for (;;) {
    if (b.status == "validating") {
      if (now_ms < o.validating_ms) return;
      const double t = o.validating_ms;
      if (b.inject_failure) {
        fail(b, t,
             {{"invalid_request", "stand-in: the input file was rejected (injected validation failure).", "",
               0}});
        bump("batch_failed_validation");
        return;
      }
      if (!b.input->errors.empty()) {
        fail(b, t, b.input->errors);
        bump("batch_failed_validation");
        return;
      }
      if (o.queue_tokens > 0 &&
          enqueued_tokens() + static_cast<double>(b.input->total_tokens) > o.queue_tokens) {
        fail(b, t,
             {{"token_limit_exceeded",
               "Enqueued token limit reached for " + b.input->model +
                   " in organization org-stand-in. Limit: " +
                   std::to_string(static_cast<long long>(o.queue_tokens)) +
                   " enqueued tokens. Please try submitting your requests again once some in_progress "
                   "batches have "
                   "been completed.",
               "", 0}});
        bump("batch_failed_token_limit");
        return;
      }
      start(b, t);
      continue;
    }
    if (b.status == "in_progress") {
      const std::size_t n = b.if_processed.size();
      if (b.force_expire_fraction) {
        const auto k =
            std::max(progress(b, now_ms),
                     static_cast<std::size_t>(std::floor(*b.force_expire_fraction * static_cast<double>(n))));
        finish(b, now_ms, std::min(k, n), "expired");
        return;
      }
      const double start_ms = *b.in_progress_ms;
      const double done_at = b.force_complete       ? now_ms
                             : o.completion_ms >= 0 ? start_ms + o.completion_ms
                                                    : 1e300;
      const double expire_at = o.expire_ms >= 0 ? start_ms + o.expire_ms : 1e300;
      if (expire_at < done_at && now_ms >= expire_at) {
        finish(b, expire_at, progress(b, expire_at), "expired");
        return;
      }
      if (now_ms < done_at) return;
      b.status = "finalizing";
      b.finalizing_ms = std::min(done_at, now_ms);
      b.processed = n;
      continue;
    }
    if (b.status == "finalizing") {
      if (now_ms < *b.finalizing_ms + o.finalizing_ms) return;
      finish(b, *b.finalizing_ms + o.finalizing_ms, b.if_processed.size(), "completed");
      return;
    }
    if (b.status == "cancelling") {
      const std::size_t k = b.finalizing_ms ? b.if_processed.size() : progress(b, *b.cancelling_ms);
      finish(b, now_ms, k, "cancelled");
      return;
    }
    return;  // final
  }
}

void BatchService::Impl::advance_all(BatchClock::time_point now) {
  std::vector<BatchRec*> order;
  order.reserve(batches.size());
  for (auto& [id, b] : batches)
    order.push_back(&b);
  std::sort(order.begin(), order.end(), [](const BatchRec* a, const BatchRec* b) { return a->seq < b->seq; });
  for (BatchRec* b : order)
    advance(*b, now);
}

// ---- JSON ----

std::string BatchService::Impl::batch_json(const BatchRec& b) const {
  auto at = [&](const std::optional<double>& ms) {
    return ms ? std::to_string(b.created_unix + static_cast<std::int64_t>(*ms / 1000)) : std::string("null");
  };
  auto id_or_null = [](const std::string& id) { return id.empty() ? std::string("null") : "\"" + id + "\""; };
  std::string s = "{\"id\":\"" + b.id + "\",\"object\":\"batch\",\"endpoint\":\"/v1/embeddings\",\"errors\":";
  if (b.errors.empty()) {
    s += "null";
  } else {
    s += "{\"object\":\"list\",\"data\":[";
    for (std::size_t i = 0; i < b.errors.size(); ++i) {
      const ValidationError& e = b.errors[i];
      if (i) s += ",";
      s += "{\"code\":\"" + json_escape(e.code) + "\",\"message\":\"" + json_escape(e.message) +
           "\",\"param\":" + (e.param.empty() ? std::string("null") : "\"" + json_escape(e.param) + "\"") +
           ",\"line\":" + (e.line ? std::to_string(e.line) : std::string("null")) + "}";
    }
    s += "]}";
  }
  const auto [ok, bad] = counts(b);
  const std::size_t total = b.in_progress_ms ? b.if_processed.size() : 0;
  s += ",\"input_file_id\":\"" + b.input_file_id + "\",\"completion_window\":\"24h\",\"status\":\"" +
       b.status + "\",\"output_file_id\":" + id_or_null(b.output_file_id) +
       ",\"error_file_id\":" + id_or_null(b.error_file_id) +
       ",\"created_at\":" + std::to_string(b.created_unix) + ",\"in_progress_at\":" + at(b.in_progress_ms) +
       ",\"expires_at\":" + std::to_string(b.created_unix + 86'400) +
       ",\"finalizing_at\":" + at(b.finalizing_ms) + ",\"completed_at\":" + at(b.completed_ms) +
       ",\"failed_at\":" + at(b.failed_ms) + ",\"expired_at\":" + at(b.expired_ms) +
       ",\"cancelling_at\":" + at(b.cancelling_ms) + ",\"cancelled_at\":" + at(b.cancelled_ms) +
       ",\"request_counts\":{\"total\":" + std::to_string(total) + ",\"completed\":" + std::to_string(ok) +
       ",\"failed\":" + std::to_string(bad) + "},\"metadata\":";
  if (b.metadata.empty()) {
    s += "null";
  } else {
    s += "{";
    for (std::size_t i = 0; i < b.metadata.size(); ++i) {
      if (i) s += ",";
      s += "\"" + json_escape(b.metadata[i].first) + "\":\"" + json_escape(b.metadata[i].second) + "\"";
    }
    s += "}";
  }
  return s + "}";
}

std::string BatchService::Impl::file_json(const FileRec& f) const {
  return "{\"id\":\"" + f.id +
         "\",\"object\":\"file\",\"bytes\":" + std::to_string(std::max<std::int64_t>(0, f.bytes)) +
         ",\"created_at\":" + std::to_string(f.created_at) + ",\"filename\":\"" + json_escape(f.filename) +
         "\",\"purpose\":\"" + f.purpose + "\",\"status\":\"processed\",\"status_details\":null}";
}

}  // namespace lens::stand_in
