// The Batch API client: one curl easy handle, reset and set up again for each call (its
// connection, TLS session and DNS cache survive the reset), blocking curl_easy_perform.
#include "provider/openai/batch_client.h"

#include <curl/curl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>

#include "provider/openai/curl_setup.h"
#include "util/redact.h"

namespace lens::provider::openai {
namespace {

// Bodies of JSON answers (and of refused downloads) larger than this are cut: no answer
// we parse comes near it (a page of 100 batches is a few hundred KB).
constexpr std::size_t k_max_json_body = 64u << 20;
constexpr std::size_t k_max_error_body = 64u << 10;

enum class Method { get, post_json, post_empty, post_mime, del };

EmbedFailure failure(util::ErrorCode code, std::string message, int status = 0) {
  EmbedFailure f;
  f.error = util::Error{code, std::move(message)};
  f.http_status = status;
  return f;
}

std::unexpected<EmbedFailure> unexpected(util::Error e) {
  EmbedFailure f;
  f.error = std::move(e);
  return std::unexpected(std::move(f));
}

// A file name the provider keeps and curl puts in a multipart header: kept to characters
// that need no quoting anywhere.
bool safe_filename(std::string_view name) {
  if (name.empty() || name.size() > 200) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}

}  // namespace

struct BatchClient::Impl {
  OpenAiOptions options;
  TrustFiles trust;
  BatchClientOptions batch;
  std::string base;
  CURL* easy = nullptr;
  curl_slist* json_headers = nullptr;
  curl_slist* plain_headers = nullptr;
  char error[CURL_ERROR_SIZE] = {};
  std::string body;  // the answer's body (JSON calls) or its start (refused downloads)
  std::string request;
  ResponseHeaders headers;

  // Per call.
  long status = 0;
  std::function<bool(const char*, std::size_t)> stream;  // 2xx bodies of downloads go here
  std::optional<util::Error> stream_error;               // why `stream` stopped the transfer

  ~Impl() {
    if (easy) curl_easy_cleanup(easy);
    curl_slist_free_all(json_headers);
    curl_slist_free_all(plain_headers);
  }

  std::string escape(std::string_view part) {
    char* e = curl_easy_escape(easy, part.data(), static_cast<int>(part.size()));
    std::string out = e ? e : "";
    curl_free(e);
    return out;
  }

  static std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
    auto* m = static_cast<Impl*>(user);
    const std::size_t bytes = size * n;
    if (m->status == 0) curl_easy_getinfo(m->easy, CURLINFO_RESPONSE_CODE, &m->status);
    const bool ok = m->status >= 200 && m->status < 300;
    if (ok && m->stream) return m->stream(data, bytes) ? bytes : 0;
    const std::size_t cap = m->stream ? k_max_error_body : k_max_json_body;
    if (m->body.size() < cap) m->body.append(data, std::min(bytes, cap - m->body.size()));
    return bytes;
  }

  static std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
    auto* m = static_cast<Impl*>(user);
    const std::string_view line(data, size * n);
    // A new response (after a 1xx): forget the headers of the previous one.
    if (line.starts_with("HTTP/")) {
      m->headers.clear();
      m->status = 0;
    }
    parse_header_line(line, m->headers);
    return size * n;
  }

  static int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto* m = static_cast<Impl*>(user);
    return m->batch.cancel && m->batch.cancel->load(std::memory_order_relaxed) ? 1 : 0;
  }

  // Performs one call. On a 2xx answer: the body is in `body` (unless streamed).
  BatchStatusResult perform(Method method, const std::string& path, BatchCall call, curl_mime* mime = nullptr,
                            bool long_transfer = false) {
    const std::string url = base + path;
    const std::string what = std::string(method == Method::get   ? "GET "
                                         : method == Method::del ? "DELETE "
                                                                 : "POST ") +
                             path;
    curl_easy_reset(easy);
    apply_transfer_options(easy, options, trust);
    curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, this);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, method == Method::post_json ? json_headers : plain_headers);
    if (batch.cancel) {
      curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, on_progress);
      curl_easy_setopt(easy, CURLOPT_XFERINFODATA, this);
    }
    if (long_transfer) {
      // No deadline for the whole transfer, only for a stall.
      curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 0L);
      curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
      curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME,
                       std::max(1L, static_cast<long>(batch.stall_timeout.count() / 1000)));
    }
    switch (method) {
      case Method::get:
        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
        break;
      case Method::post_json:
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request.data());
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.size()));
        break;
      case Method::post_empty:
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(0));
        break;
      case Method::post_mime:
        curl_easy_setopt(easy, CURLOPT_MIMEPOST, mime);
        break;
      case Method::del:
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, "DELETE");
        break;
    }
    body.clear();
    headers.clear();
    status = 0;
    error[0] = '\0';
    stream_error.reset();

    const CURLcode code = curl_easy_perform(easy);
    if (code != CURLE_OK) {
      if (code == CURLE_WRITE_ERROR && stream_error) return unexpected(std::move(*stream_error));
      if (code == CURLE_ABORTED_BY_CALLBACK) {
        return std::unexpected(failure(util::ErrorCode::cancelled, what + ": cancelled"));
      }
      std::string detail = curl_easy_strerror(code);
      if (error[0]) detail += std::string(" (") + error + ")";
      EmbedFailure f = classify_transport(transport_kind(code), detail);
      f.error.message = util::redact(what) + ": " + f.error.message;
      return std::unexpected(std::move(f));
    }
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) return {};
    EmbedFailure f = classify_batch_http(call, static_cast<int>(status), headers, body);
    f.error.message = util::redact(what) + ": " + f.error.message;
    return std::unexpected(std::move(f));
  }

  // perform() then `parse` over the body; a parse failure names the call.
  template <typename T>
  BatchResult<T> call_json(Method method, const std::string& path, BatchCall call,
                           util::Result<T> (*parse)(std::string_view)) {
    if (auto done = perform(method, path, call); !done) return std::unexpected(std::move(done.error()));
    auto parsed = parse(body);
    if (!parsed) {
      EmbedFailure f = failure(parsed.error().code, util::redact(path) + ": " + parsed.error().message,
                               static_cast<int>(status));
      return std::unexpected(std::move(f));
    }
    return std::move(*parsed);
  }
};

BatchClient::BatchClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BatchClient::~BatchClient() = default;

BatchResult<std::unique_ptr<BatchClient>> make_batch_client(const OpenAiOptions& options,
                                                            const BatchClientOptions& batch) {
  if (auto init = init_curl(); !init) return unexpected(init.error());
  auto base = checked_base_url(options);  // registers the key as a secret first
  if (!base) return unexpected(base.error());
  auto trust = trust_files(options);
  if (!trust) return unexpected(trust.error());
  auto impl = std::make_unique<BatchClient::Impl>();
  impl->options = options;
  impl->trust = std::move(*trust);
  impl->batch = batch;
  impl->base = std::move(*base);
  impl->easy = curl_easy_init();
  if (!impl->easy) return std::unexpected(failure(util::ErrorCode::internal, "curl_easy_init failed"));
  impl->json_headers = make_headers(options, /*json_body=*/true);
  impl->plain_headers = make_headers(options, /*json_body=*/false);
  return std::unique_ptr<BatchClient>(new BatchClient(std::move(impl)));
}

// ---- files ----

BatchResult<FileObject> BatchClient::upload_file(const std::string& path, std::string_view filename) {
  Impl& m = *impl_;
  if (!safe_filename(filename)) {
    return std::unexpected(
        failure(util::ErrorCode::invalid_argument,
                "a batch file name is 1-200 of [A-Za-z0-9._-], not '" + snippet(filename, 80) + "'"));
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || ::access(path.c_str(), R_OK) != 0) {
    return std::unexpected(
        failure(util::ErrorCode::not_found, "cannot read batch file " + path + ": " + std::strerror(errno)));
  }
  if (static_cast<std::uint64_t>(st.st_size) > k_batch_max_file_bytes) {
    return std::unexpected(failure(util::ErrorCode::invalid_argument,
                                   "batch file " + path + " has " + std::to_string(st.st_size) +
                                       " bytes; a batch input file holds at most " +
                                       std::to_string(k_batch_max_file_bytes)));
  }
  curl_mime* mime = curl_mime_init(m.easy);
  if (!mime) return std::unexpected(failure(util::ErrorCode::internal, "curl_mime_init failed"));
  curl_mimepart* purpose = curl_mime_addpart(mime);
  curl_mime_name(purpose, "purpose");
  curl_mime_data(purpose, "batch", CURL_ZERO_TERMINATED);
  curl_mimepart* file = curl_mime_addpart(mime);
  curl_mime_name(file, "file");
  // Read from disk while it is sent, in curl's buffer-sized pieces.
  curl_mime_filedata(file, path.c_str());
  const std::string name(filename);
  curl_mime_filename(file, name.c_str());
  curl_mime_type(file, "application/jsonl");
  auto done = m.perform(Method::post_mime, "/files", BatchCall::files, mime, /*long_transfer=*/true);
  curl_mime_free(mime);
  if (!done) return std::unexpected(std::move(done.error()));
  auto parsed = parse_file_object(m.body);
  if (!parsed) {
    return std::unexpected(
        failure(parsed.error().code, "POST /files: " + parsed.error().message, static_cast<int>(m.status)));
  }
  return std::move(*parsed);
}

BatchResult<FilePage> BatchClient::list_files(std::string_view purpose, std::string_view after, int limit) {
  Impl& m = *impl_;
  std::string path = "/files?order=desc&limit=" + std::to_string(std::clamp(limit, 1, 10'000));
  if (!purpose.empty()) path += "&purpose=" + m.escape(purpose);
  if (!after.empty()) path += "&after=" + m.escape(after);
  return m.call_json<FilePage>(Method::get, path, BatchCall::files, parse_file_page);
}

BatchResult<std::vector<FileObject>> BatchClient::find_files(std::string_view filename,
                                                             std::int64_t created_after) {
  std::vector<FileObject> found;
  std::string after;
  for (;;) {
    auto page = list_files("batch", after, 100);
    if (!page) return std::unexpected(std::move(page.error()));
    bool older = false;
    for (auto& f : page->data) {
      if (f.created_at != 0 && f.created_at < created_after) older = true;
      if (f.filename == filename) found.push_back(std::move(f));
    }
    // A server that repeats its cursor would loop forever: stop when it does not move.
    if (!page->has_more || older || page->last_id.empty() || page->last_id == after) break;
    after = page->last_id;
  }
  return found;
}

BatchResult<FileObject> BatchClient::get_file(std::string_view file_id) {
  Impl& m = *impl_;
  return m.call_json<FileObject>(Method::get, "/files/" + m.escape(file_id), BatchCall::file,
                                 parse_file_object);
}

BatchStatusResult BatchClient::delete_file(std::string_view file_id) {
  Impl& m = *impl_;
  auto deleted =
      m.call_json<bool>(Method::del, "/files/" + m.escape(file_id), BatchCall::file, parse_deleted);
  if (!deleted) return std::unexpected(std::move(deleted.error()));
  if (!*deleted) {
    return std::unexpected(failure(util::ErrorCode::permanent,
                                   "DELETE /files/" + std::string(file_id) + ": the provider kept the file"));
  }
  return {};
}

BatchStatusResult BatchClient::download_results(std::string_view file_id,
                                                const BatchResultReader::ShapeFn& shape,
                                                const BatchResultReader::LineFn& on_line,
                                                DownloadProgress& progress, std::uint64_t skip_bytes) {
  Impl& m = *impl_;
  BatchResultReader reader(shape, on_line, m.options.model);
  std::uint64_t to_skip = skip_bytes;
  progress.bytes = skip_bytes;
  progress.read = {};
  m.stream = [&](const char* data, std::size_t n) {
    // Checked per received chunk as well: a fast transfer can deliver the whole file before
    // curl's progress callback runs, and a reader that asked to stop must see no more lines.
    if (m.batch.cancel && m.batch.cancel->load(std::memory_order_relaxed)) {
      m.stream_error = util::Error{util::ErrorCode::cancelled, "downloading results: cancelled"};
      return false;
    }
    std::string_view bytes(data, n);
    if (to_skip > 0) {
      const auto drop = static_cast<std::size_t>(std::min<std::uint64_t>(to_skip, n));
      to_skip -= drop;
      bytes.remove_prefix(drop);
    }
    if (bytes.empty()) return true;
    auto fed = reader.feed(bytes);
    progress.read = reader.stats();
    progress.bytes = skip_bytes + reader.stats().bytes;
    if (!fed) {
      m.stream_error = std::move(fed.error());
      return false;
    }
    return true;
  };
  auto done =
      m.perform(Method::get, "/files/" + m.escape(file_id) + "/content", BatchCall::file_content, nullptr,
                /*long_transfer=*/true);
  m.stream = nullptr;
  if (!done) return done;
  auto finished = reader.finish();
  progress.read = reader.stats();
  progress.bytes = skip_bytes + reader.stats().bytes;
  if (!finished) return unexpected(std::move(finished.error()));
  return {};
}

// ---- batches ----

BatchResult<BatchObject> BatchClient::create_batch(
    std::string_view input_file_id, const std::vector<std::pair<std::string, std::string>>& metadata) {
  Impl& m = *impl_;
  build_create_batch_body(m.request, input_file_id, metadata);
  return m.call_json<BatchObject>(Method::post_json, "/batches", BatchCall::batches, parse_batch_object);
}

BatchResult<BatchObject> BatchClient::get_batch(std::string_view batch_id) {
  Impl& m = *impl_;
  return m.call_json<BatchObject>(Method::get, "/batches/" + m.escape(batch_id), BatchCall::batch,
                                  parse_batch_object);
}

BatchResult<BatchPage> BatchClient::list_batches(std::string_view after, int limit) {
  Impl& m = *impl_;
  std::string path = "/batches?limit=" + std::to_string(std::clamp(limit, 1, 100));
  if (!after.empty()) path += "&after=" + m.escape(after);
  return m.call_json<BatchPage>(Method::get, path, BatchCall::batches, parse_batch_page);
}

BatchResult<std::vector<BatchObject>> BatchClient::find_batches(std::string_view key, std::string_view value,
                                                                std::int64_t created_after) {
  std::vector<BatchObject> found;
  std::string after;
  for (;;) {
    auto page = list_batches(after, 100);
    if (!page) return std::unexpected(std::move(page.error()));
    bool older = false;
    for (auto& b : page->data) {
      if (b.created_at != 0 && b.created_at < created_after) older = true;
      const std::string* v = b.metadata_value(key);
      if (v && *v == value) found.push_back(std::move(b));
    }
    if (!page->has_more || older || page->last_id.empty() || page->last_id == after) break;
    after = page->last_id;
  }
  return found;
}

BatchResult<BatchObject> BatchClient::cancel_batch(std::string_view batch_id) {
  Impl& m = *impl_;
  return m.call_json<BatchObject>(Method::post_empty, "/batches/" + m.escape(batch_id) + "/cancel",
                                  BatchCall::batch, parse_batch_object);
}

}  // namespace lens::provider::openai
