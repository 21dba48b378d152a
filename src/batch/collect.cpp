// The collect side of the batch driver: poll unfinished batches, adopt or release the ones
// a crash left uncreated, and apply finished ones (rows, failures, released items). See
// batch_run.h.
#include <fmt/core.h>
#include <filesystem>
#include <map>
#include <thread>

#include "batch/driver.h"
#include "pipeline/prepare.h"
#include "util/log.h"
#include "util/redact.h"

namespace lens::batch {
namespace {

namespace oa = provider::openai;
using util::ErrorCode;
using util::Result;
using util::Status;

bool stops_the_run(ErrorCode code) {
  return code == ErrorCode::configuration || code == ErrorCode::fatal || code == ErrorCode::invalid_argument;
}

// One item of a finished batch: the hash recorded when it was sent, and its exchange as the
// source holds it now when that still hashes the same (nullopt: edited or gone).
struct Entry {
  std::optional<pipeline::PreparedInput> current;
  bool resolved = false;  // a result line covered it
};

void copy_remote(store::BatchRecord& b, const oa::BatchObject& r) {
  b.status = std::string(oa::to_string(r.status));
  b.completed = r.request_counts.completed;
  b.failed = r.request_counts.failed;
  b.output_file_id = r.output_file_id;
  b.error_file_id = r.error_file_id;
  if (r.status == oa::BatchStatus::failed) b.error = util::redact(r.failure().message);
}

core::FailureReason reason_of(const provider::EmbedFailure& f) {
  if (f.context_length) return core::FailureReason::context_length;
  switch (f.error.code) {
    case ErrorCode::invalid_response:
      return core::FailureReason::invalid_response;
    case ErrorCode::transient:
    case ErrorCode::rate_limited:
      return core::FailureReason::retries_exhausted;
    default:
      return core::FailureReason::provider_rejected;
  }
}

}  // namespace

Result<std::int64_t> Driver::collect() {
  const auto& scope = o_.run.scope;
  auto open = d_.ledger.list_batches(scope.provider, scope.model, true);
  if (!open) return std::unexpected(open.error());
  std::int64_t finished = 0;
  for (auto& b : *open) {
    if (stopping()) break;
    auto r = advance(b);
    if (!r) return std::unexpected(r.error());
    if (*r) ++finished;
  }
  return finished;
}

Status Driver::release(store::BatchRecord& b, const std::string& why) {
  if (b.remote_id.empty()) b.status = "released";
  b.done = true;
  b.error = util::redact(why);
  if (auto s = d_.ledger.update_batch(b); !s) return s;
  out_.items_released += b.items;
  return {};
}

Result<bool> Driver::advance(store::BatchRecord& b) {
  if (b.remote_id.empty()) {
    // Recorded, but its create was not: a crash between them, or a create whose answer was
    // lost. The provider may know it under our key; only if not is it released (unpaid).
    auto found = d_.client.find_batches(k_metadata_key, b.key);
    if (!found) {
      if (stops_the_run(found.error().error.code)) return std::unexpected(found.error().error);
      util::log_warn("batch {}: looking it up failed (next pass tries again): {}", b.key,
                     util::redact(found.error().error.message));
      return false;
    }
    if (found->empty()) {
      if (!b.input_file_id.empty()) {
        (void)d_.client.delete_file(b.input_file_id);
      } else if (auto files = d_.client.find_files(b.key + ".jsonl"); files) {
        for (const auto& f : *files)
          (void)d_.client.delete_file(f.id);
      }
      std::error_code ec;
      std::filesystem::remove(std::filesystem::path(o_.work_dir) / (b.key + ".jsonl"), ec);
      if (auto s = release(b, "never created: the run that recorded it stopped first"); !s)
        return std::unexpected(s.error());
      return true;
    }
    b.remote_id = found->front().id;
    b.input_file_id = found->front().input_file_id;
    ++out_.batches_adopted;
    util::log_info("batch {}: found again as {} (created before a crash)", b.key, b.remote_id);
  }
  auto got = d_.client.get_batch(b.remote_id);
  if (!got) {
    const auto& e = got.error().error;
    if (e.code == ErrorCode::not_found) {
      if (auto s = release(b, fmt::format("the provider no longer knows batch {}", b.remote_id)); !s)
        return std::unexpected(s.error());
      return true;
    }
    if (stops_the_run(e.code)) return std::unexpected(e);
    util::log_warn("batch {}: polling failed (next pass tries again): {}", b.key, util::redact(e.message));
    return false;
  }
  copy_remote(b, *got);
  if (!oa::is_terminal(got->status)) {
    if (auto s = d_.ledger.update_batch(b); !s) return std::unexpected(s.error());
    return false;
  }
  if (auto s = apply(b); !s) {
    if (s.error().code == ErrorCode::cancelled) return false;  // a stop request: applied next run
    return std::unexpected(s.error());
  }
  return true;
}

Status Driver::apply(store::BatchRecord& b) {
  auto exchanges = d_.ledger.batch_exchanges(b.key);
  if (!exchanges) return std::unexpected(exchanges.error());
  std::map<std::string, std::vector<Entry>, std::less<>> requests;
  std::int64_t n = 0;
  for (auto& e : *exchanges) {
    Entry entry;
    if (e.current) {
      auto in = pipeline::prepare(std::move(*e.current), o_.run, d_.tokenizer);
      if (in.route != pipeline::Route::empty_input && in.sha256 == e.content_sha256) {
        in.text.clear();
        in.text.shrink_to_fit();
        in.pieces.clear();
        entry.current = std::move(in);
      }
    }
    requests[e.custom_id].push_back(std::move(entry));
    ++n;
  }
  const auto shape = [&](std::string_view custom_id) -> std::optional<oa::RequestShape> {
    auto it = requests.find(custom_id);
    if (it == requests.end()) return std::nullopt;
    return oa::RequestShape{it->second.size(), o_.run.dimensions};
  };
  const auto on_line = [&](const oa::BatchResultLine& line) -> bool {
    auto it = requests.find(line.custom_id);
    if (it == requests.end()) return true;  // not ours (cannot happen with our files): ignored
    auto& entries = it->second;
    const bool released =
        line.failure && (line.error_code == "batch_expired" || line.error_code == "batch_cancelled");
    for (std::size_t i = 0; i < entries.size(); ++i) {
      Entry& e = entries[i];
      if (e.resolved || released) continue;
      e.resolved = true;
      if (!e.current) {
        ++out_.items_discarded;
        continue;
      }
      if (line.success) {
        const auto dims = static_cast<std::size_t>(line.success->dimensions);
        const float* v = line.success->vectors.data() + i * dims;
        pending_write_.rows.push_back(pipeline::make_row(*e.current, std::vector<float>(v, v + dims)));
      } else if (line.failure) {
        pending_write_.failures.push_back(pipeline::make_failure(*e.current, reason_of(*line.failure),
                                                                 util::redact(line.failure->error.message)));
      }
    }
    if (auto s = flush(false); !s) {
      util::log_error("batch {}: writing results failed: {}", b.key, s.error().message);
      return false;
    }
    return !stopping();
  };
  for (const std::string* file_id : {&b.output_file_id, &b.error_file_id}) {
    if (file_id->empty()) continue;
    provider::openai::DownloadProgress progress;
    std::uint64_t skip = 0;
    for (int attempt = 1;; ++attempt) {
      auto r = d_.client.download_results(*file_id, shape, on_line, progress, skip);
      if (r) break;
      const auto& e = r.error().error;
      if (e.code == ErrorCode::not_found) {
        util::log_warn("batch {}: file {} is gone; its items are submitted again", b.key, *file_id);
        ++out_.outputs_gone;
        break;
      }
      if (e.code == ErrorCode::cancelled || stopping()) return util::fail(ErrorCode::cancelled, "stopped");
      if (e.code != ErrorCode::transient || attempt >= o_.download_attempts) return std::unexpected(e);
      skip = std::max(skip, progress.bytes);
      util::log_warn("batch {}: download of {} failed at byte {} (resuming): {}", b.key, *file_id, skip,
                     util::redact(e.message));
      std::this_thread::sleep_for(std::chrono::milliseconds(200 * attempt));
    }
  }
  if (auto s = flush(true); !s) return s;
  std::int64_t unresolved = 0;
  for (const auto& [id, entries] : requests) {
    for (const auto& e : entries)
      unresolved += e.resolved ? 0 : 1;
  }
  b.done = true;
  if (auto s = d_.ledger.update_batch(b); !s) return s;
  ++out_.batches_collected;
  out_.items_released += unresolved;
  util::log_info("batch {} ({}) {}: {} items, {} released to be submitted again", b.key, b.remote_id,
                 b.status, n, unresolved);
  return {};
}

Status Driver::flush(bool force) {
  auto& w = pending_write_;
  const std::size_t n = w.rows.size() + w.touches.size() + w.failures.size();
  if (n == 0 || (!force && n < o_.run.rows_per_transaction)) return {};
  w.run_id = run_id;
  w.provider = o_.run.scope.provider;
  w.model = o_.run.scope.model;
  core::RunStats progress = out_.stats;
  progress.embedded += static_cast<std::int64_t>(w.rows.size());
  progress.unchanged += static_cast<std::int64_t>(w.touches.size());
  progress.failed += static_cast<std::int64_t>(w.failures.size());
  w.progress = progress;
  util::Result<store::WriteReport> report = util::fail(ErrorCode::transient, "not tried");
  for (int attempt = 1; attempt <= 5; ++attempt) {
    report = d_.store.write_batch(w);
    if (report || report.error().code != ErrorCode::transient) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500 * attempt));
  }
  if (!report) return std::unexpected(report.error());
  progress.embedded -= report->fenced_rows;
  progress.unchanged -= report->fenced_touches;
  progress.failed -= report->fenced_failures;
  progress.fenced += report->fenced();
  out_.stats = progress;
  w.rows.clear();
  w.touches.clear();
  w.failures.clear();
  return {};
}

}  // namespace lens::batch
