// The submit side of the batch driver: pending exchanges → requests → input files → batches,
// each recorded in the ledger before its file is uploaded. See batch_run.h.
#include <fmt/core.h>
#include <filesystem>
#include <random>
#include <string_view>

#include "batch/driver.h"
#include "pipeline/prepare.h"
#include "provider/openai/batch_file_writer.h"
#include "util/log.h"
#include "util/redact.h"

namespace lens::batch {
namespace {

namespace oa = provider::openai;
using util::ErrorCode;
using util::Result;
using util::Status;

// The input file being filled, with what the ledger will record for it.
struct OpenFile {
  std::string key;
  std::string path;
  std::unique_ptr<oa::BatchFileWriter> writer;
  std::vector<store::BatchItem> items;
  std::int64_t tokens = 0;
  std::int64_t requests = 0;
};

bool stops_the_run(ErrorCode code) {
  return code == ErrorCode::configuration || code == ErrorCode::fatal || code == ErrorCode::invalid_argument;
}

}  // namespace

std::string new_batch_key() {
  std::random_device rd;
  std::uint64_t v = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  return fmt::format("lensb-{:016x}", v);
}

Result<std::int64_t> Driver::submit() {
  const auto& scope = o_.run.scope;
  auto open = d_.ledger.list_batches(scope.provider, scope.model, true);
  if (!open) return std::unexpected(open.error());
  std::int64_t enqueued = 0;
  for (const auto& b : *open)
    enqueued += b.tokens;
  const std::int64_t budget = o_.queue_tokens - enqueued;
  std::int64_t used = 0;  // tokens of this pass's batches, the open file and the open request
  std::int64_t submitted = 0;
  bool stop_submitting = false;

  oa::BatchFileOptions fo;
  fo.model = o_.run.model.name;
  fo.encoding_format = o_.encoding_format;
  fo.dimensions = o_.run.dimensions;
  fo.limits = o_.file_limits;

  OpenFile file;
  std::vector<pipeline::PreparedInput> request;
  std::int64_t request_tokens = 0;

  // The file as it is: recorded, uploaded, created, each step in the ledger before the next.
  const auto send_file = [&]() -> Status {
    if (!file.writer || file.items.empty()) return {};
    if (auto s = file.writer->finish(); !s) return s;
    store::BatchRecord rec;
    rec.key = file.key;
    rec.provider = scope.provider;
    rec.model = scope.model;
    rec.dimensions = o_.run.dimensions;
    rec.requests = file.requests;
    rec.tokens = file.tokens;
    rec.items = static_cast<std::int64_t>(file.items.size());
    rec.status = "recorded";
    if (auto s = d_.ledger.record_batch(rec, file.items); !s) return s;
    std::error_code ec;
    const auto cleanup = [&] { std::filesystem::remove(file.path, ec); };
    auto uploaded = d_.client.upload_file(file.path, file.key + ".jsonl");
    if (!uploaded) {
      const auto& e = uploaded.error().error;
      if (auto s = release(rec, fmt::format("upload failed: {}", e.message)); !s) return s;
      cleanup();
      stop_submitting = true;
      if (stops_the_run(e.code)) return std::unexpected(e);
      util::log_warn("batch {}: upload failed, its items stay pending: {}", file.key,
                     util::redact(e.message));
      return {};
    }
    rec.input_file_id = uploaded->id;
    rec.status = "uploaded";
    if (auto s = d_.ledger.update_batch(rec); !s) return s;
    cleanup();
    auto created = d_.client.create_batch(uploaded->id, {{k_metadata_key, file.key}});
    if (!created) {
      // The create may have happened with its answer lost: look before giving up on it.
      auto found = d_.client.find_batches(k_metadata_key, file.key);
      if (found && !found->empty()) {
        created = found->front();
      } else {
        const auto& e = created.error().error;
        (void)d_.client.delete_file(uploaded->id);
        if (auto s = release(rec, fmt::format("create failed: {}", e.message)); !s) return s;
        stop_submitting = true;
        if (stops_the_run(e.code)) return std::unexpected(e);
        util::log_warn("batch {}: create failed, its items stay pending: {}", file.key,
                       util::redact(e.message));
        return {};
      }
    }
    rec.remote_id = created->id;
    rec.status = std::string(oa::to_string(created->status));
    if (auto s = d_.ledger.update_batch(rec); !s) return s;
    ++out_.batches_submitted;
    out_.items_submitted += rec.items;
    out_.stats.tokens += rec.tokens;
    out_.stats.requests += rec.requests;
    submitted += rec.items;
    util::log_info("batch {} submitted as {}: {} items, {} requests, {} tokens", rec.key, rec.remote_id,
                   rec.items, rec.requests, rec.tokens);
    return {};
  };

  const auto open_file = [&]() -> Status {
    file = OpenFile{};
    file.key = new_batch_key();
    file.path = (std::filesystem::path(o_.work_dir) / (file.key + ".jsonl")).string();
    auto w = oa::BatchFileWriter::create(file.path, fo);
    if (!w) return std::unexpected(w.error());
    file.writer = std::move(*w);
    return {};
  };

  // The request as one line of the open file; a full file is sent and a new one started.
  const auto flush_request = [&]() -> Status {
    if (request.empty()) return {};
    std::vector<std::string_view> texts;
    texts.reserve(request.size());
    for (const auto& in : request)
      texts.push_back(in.text);
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (!file.writer) {
        if (auto s = open_file(); !s) return s;
      }
      const std::string custom_id = fmt::format("r{}", file.requests);
      auto appended = file.writer->append(custom_id, texts);
      if (!appended) return std::unexpected(appended.error());
      if (!*appended) {
        if (auto s = send_file(); !s) return s;
        file = OpenFile{};
        if (stop_submitting) break;
        continue;
      }
      for (std::size_t i = 0; i < request.size(); ++i) {
        file.items.push_back({request[i].user_message_id, request[i].sha256, custom_id,
                              static_cast<std::int64_t>(i), request[i].token_count});
      }
      ++file.requests;
      file.tokens += request_tokens;
      break;
    }
    request.clear();
    request_tokens = 0;
    return {};
  };

  if (budget <= 0) return 0;
  store::PendingCursor cursor;
  const std::int64_t limit = o_.run.limit ? *o_.run.limit : -1;
  bool done = false;
  while (!done && !stop_submitting && !stopping()) {
    auto page = d_.store.next_pending(scope, cursor, o_.run.page_size);
    if (!page) return std::unexpected(page.error());
    for (auto& ex : page->items) {
      auto in = pipeline::prepare(std::move(ex), o_.run, d_.tokenizer);
      if (in.route == pipeline::Route::empty_input) {
        pending_write_.failures.push_back(pipeline::make_failure(in, core::FailureReason::empty_input,
                                                                 "user message content is only white space"));
        continue;
      }
      if (in.route == pipeline::Route::unchanged) {
        pending_write_.touches.push_back(pipeline::make_touch(in));
        continue;
      }
      if (limit >= 0 &&
          out_.items_submitted + static_cast<std::int64_t>(file.items.size() + request.size()) >= limit) {
        done = true;
        break;
      }
      if (used + in.token_count > budget) {
        done = true;  // the queue is full: the rest waits for earlier batches to finish
        break;
      }
      if (request.size() >= o_.run.batch_size || request_tokens + in.token_count > o_.request_tokens) {
        if (auto s = flush_request(); !s) return std::unexpected(s.error());
        if (stop_submitting) break;
      }
      used += in.token_count;
      request_tokens += in.token_count;
      if (in.truncated) ++out_.stats.truncated;
      request.push_back(std::move(in));
    }
    if (auto s = flush(false); !s) return std::unexpected(s.error());
    if (page->exhausted) break;
  }
  if (!stop_submitting) {
    if (auto s = flush_request(); !s) return std::unexpected(s.error());
  }
  if (!stop_submitting) {
    if (auto s = send_file(); !s) return std::unexpected(s.error());
  } else if (file.writer) {
    std::error_code ec;
    std::filesystem::remove(file.path, ec);
  }
  if (auto s = flush(true); !s) return std::unexpected(s.error());
  return submitted;
}

}  // namespace lens::batch
