// The OpenAI-compatible client: one curl multi handle drives every request from the
// caller's poll(); easy handles, buffers and connections are pooled and reused.
#include "provider/openai/openai_provider.h"

#include <curl/curl.h>

#include <fmt/core.h>
#include <algorithm>
#include <unordered_map>

#include "provider/openai/curl_setup.h"
#include "provider/openai/wire.h"
#include "util/log.h"

namespace lens::provider {
namespace {

using Clock = std::chrono::steady_clock;

// Buffers above this are dropped when a transfer goes back to the pool, so one huge
// response does not pin its memory for the rest of the run.
constexpr std::size_t k_max_pooled_capacity = 64u << 20;
// simdjson reads up to this many bytes past the end; reserving it avoids a copy later.
constexpr std::size_t k_padding = 64;

struct Transfer {
  CURL* easy = nullptr;
  std::uint64_t ticket = 0;
  std::size_t n_inputs = 0;
  std::optional<int> dimensions;
  bool sent_base64 = true;
  std::string request;
  std::string response;
  openai::ResponseHeaders headers;
  Clock::time_point started;
  char error[CURL_ERROR_SIZE] = {};

  ~Transfer() {
    if (easy) curl_easy_cleanup(easy);
  }
};

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t bytes = size * n;
  std::string& r = t->response;
  if (r.capacity() < r.size() + bytes + k_padding) {
    r.reserve(std::max(r.capacity() * 2, r.size() + bytes + k_padding));
  }
  r.append(data, bytes);
  return bytes;
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  openai::parse_header_line(std::string_view(data, size * n), t->headers);
  return size * n;
}

bool mentions_encoding_format(const openai::ErrorBody& e) {
  return e.param == "encoding_format" || e.message.find("encoding_format") != std::string::npos ||
         e.message.find("base64") != std::string::npos;
}

class OpenAiProvider final : public Provider {
 public:
  OpenAiProvider(OpenAiOptions options, std::string url, openai::TrustFiles trust, CURLM* multi,
                 curl_slist* headers)
      : options_(std::move(options)),
        url_(std::move(url)),
        trust_(std::move(trust)),
        multi_(multi),
        headers_(headers),
        use_float_(options_.encoding_format == "float") {}

  ~OpenAiProvider() override {
    cancel_all();
    idle_.clear();
    curl_multi_cleanup(multi_);
    curl_slist_free_all(headers_);
  }

  void submit(EmbedRequest request) override {
    std::unique_ptr<Transfer> t = acquire();
    if (!t) {
      Completion c;
      c.ticket = request.ticket;
      c.result = std::unexpected(EmbedFailure{util::Error{util::ErrorCode::internal, "curl_easy_init failed"},
                                              0, std::nullopt, false});
      ready_.push_back(std::move(c));
      return;
    }
    t->ticket = request.ticket;
    t->n_inputs = request.inputs.size();
    t->dimensions = request.dimensions ? request.dimensions : request.expected_dimensions;
    t->sent_base64 = !use_float_;
    t->headers.clear();
    t->error[0] = '\0';
    openai::build_request_body(t->request, options_.model, request.inputs, use_float_ ? "float" : "base64",
                               request.dimensions);
    // Pre-size for the expected answer: ~16/3 bytes per float in base64, ~20 as text.
    const std::size_t dims = static_cast<std::size_t>(request.dimensions.value_or(last_dimensions_));
    const std::size_t per_value = use_float_ ? 20 : 6;
    t->response.clear();
    t->response.reserve(
        std::min<std::size_t>(k_max_pooled_capacity, t->n_inputs * (dims * per_value + 64) + 1024));
    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, t->request.data());
    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->request.size()));
    t->started = Clock::now();
    Transfer* raw = t.get();
    if (const CURLMcode rc = curl_multi_add_handle(multi_, raw->easy); rc != CURLM_OK) {
      Completion c;
      c.ticket = request.ticket;
      c.result = std::unexpected(
          EmbedFailure{util::Error{util::ErrorCode::internal,
                                   std::string("curl_multi_add_handle: ") + curl_multi_strerror(rc)},
                       0, std::nullopt, false});
      ready_.push_back(std::move(c));
      release(std::move(t));
      return;
    }
    active_.emplace(raw, std::move(t));
  }

  std::vector<Completion> poll(std::chrono::milliseconds timeout) override {
    std::vector<Completion> out = std::move(ready_);
    ready_.clear();
    if (active_.empty()) return out;
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      int running = 0;
      curl_multi_perform(multi_, &running);
      drain(out);
      if (!out.empty() || active_.empty()) break;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) break;
      curl_multi_poll(multi_, nullptr, 0, static_cast<int>(std::min<std::int64_t>(left.count(), 1'000'000)),
                      nullptr);
    }
    return out;
  }

  [[nodiscard]] std::size_t in_flight() const override { return active_.size() + ready_.size(); }

  void cancel_all() override {
    for (auto& [raw, t] : active_) {
      curl_multi_remove_handle(multi_, raw->easy);
      release(std::move(t));
    }
    active_.clear();
    ready_.clear();
  }

  void recycle(std::vector<float>&& vectors) override {
    // As many as answers come in at once (the window), so each decodes into warm memory.
    constexpr std::size_t k_kept = 16;
    if (vectors.capacity() == 0 || vectors.capacity() * sizeof(float) > k_max_pooled_capacity) return;
    if (spare_vectors_.size() < k_kept) spare_vectors_.push_back(std::move(vectors));
  }

 private:
  std::unique_ptr<Transfer> acquire() {
    if (!idle_.empty()) {
      auto t = std::move(idle_.back());
      idle_.pop_back();
      return t;
    }
    auto t = std::make_unique<Transfer>();
    t->easy = curl_easy_init();
    if (!t->easy) return nullptr;
    CURL* e = t->easy;
    // Options that never change for this client: set once, kept across reuses.
    curl_easy_setopt(e, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
    curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
    openai::apply_transfer_options(e, options_, trust_);
    // Wait for a multiplexed HTTP/2 stream rather than opening another connection.
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    return t;
  }

  void release(std::unique_ptr<Transfer> t) {
    if (t->response.capacity() > k_max_pooled_capacity) std::string().swap(t->response);
    if (t->request.capacity() > k_max_pooled_capacity) std::string().swap(t->request);
    // Keep at most one idle handle per connection; the rest would never be used at once.
    if (idle_.size() < static_cast<std::size_t>(std::max(1, options_.max_connections))) {
      idle_.push_back(std::move(t));
    }
  }

  void drain(std::vector<Completion>& out) {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* easy = msg->easy_handle;
      const CURLcode code = msg->data.result;
      Transfer* raw = nullptr;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, &raw);
      curl_multi_remove_handle(multi_, easy);
      auto it = active_.find(raw);
      if (it == active_.end()) continue;
      std::unique_ptr<Transfer> t = std::move(it->second);
      active_.erase(it);
      out.push_back(finish(*t, code));
      release(std::move(t));
    }
  }

  Completion finish(Transfer& t, CURLcode code) {
    Completion c;
    c.ticket = t.ticket;
    c.latency = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t.started);
    c.rate = t.headers.rate;
    if (code != CURLE_OK) {
      const openai::TransportError kind = openai::transport_kind(code);
      std::string detail;
      if (kind == openai::TransportError::tls_verify || kind == openai::TransportError::tls_setup) {
        // curl's own text for these ("SSL peer certificate or SSH remote key was not OK")
        // says less than OpenSSL's; the URL says which server the certificate came from.
        detail = url_ + ": " + (t.error[0] ? std::string(t.error) : curl_easy_strerror(code));
      } else {
        detail = curl_easy_strerror(code);
        if (t.error[0]) detail += std::string(" (") + t.error + ")";
      }
      c.result = std::unexpected(openai::classify_transport(kind, detail));
      return c;
    }
    long status = 0;
    curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
      EmbedSuccess ok;
      if (!spare_vectors_.empty()) {
        ok.vectors = std::move(spare_vectors_.back());
        spare_vectors_.pop_back();
      }
      auto parsed = parser_.parse_into(t.response, t.n_inputs, t.dimensions, ok);
      if (parsed) {
        wrong_size_answers_ = 0;
        last_dimensions_ = ok.dimensions;
        c.result = std::move(ok);
      } else {
        EmbedFailure f;
        f.http_status = static_cast<int>(status);
        // Vectors of another size than expected (response.cpp says so with `configuration`):
        // once, a broken answer; k_wrong_size_answers in a row, the model behind the endpoint.
        const bool wrong_size = parsed.error().code == util::ErrorCode::configuration;
        wrong_size_answers_ = wrong_size ? wrong_size_answers_ + 1 : 0;
        f.error = util::Error{
            wrong_size && wrong_size_answers_ >= k_wrong_size_answers ? util::ErrorCode::configuration
                                                                      : util::ErrorCode::invalid_response,
            parsed.error().message + " (HTTP " + std::to_string(status) + ", model " + options_.model +
                "; body starts: " + openai::snippet(t.response, 160) + ")"};
        c.result = std::unexpected(std::move(f));
      }
      return c;
    }
    const openai::ErrorBody error = openai::parse_error_body(t.response);
    if (status == 400 && t.sent_base64 && mentions_encoding_format(error)) {
      // A server without base64: fall back to float arrays and let the caller retry.
      if (!use_float_) {
        util::log_warn("provider rejects encoding_format=base64 ({}); switching to float",
                       openai::snippet(error.message, 200));
      }
      use_float_ = true;
      c.result = std::unexpected(EmbedFailure{
          util::Error{util::ErrorCode::transient, "server rejects base64 encoding; retrying with float"},
          static_cast<int>(status), std::chrono::milliseconds(0), false});
      return c;
    }
    c.result = std::unexpected(
        openai::classify_http(static_cast<int>(status), t.headers, error, t.response, options_.model));
    return c;
  }

  OpenAiOptions options_;
  std::string url_;
  openai::TrustFiles trust_;
  CURLM* multi_;
  curl_slist* headers_;
  bool use_float_;
  int last_dimensions_ = 1536;
  // Answers in a row whose vectors all had another size than expected. A sporadic broken
  // answer (one short vector, in a one-input request too) must not stop a run; a model that
  // is not the one named answers every request so.
  static constexpr int k_wrong_size_answers = 5;
  int wrong_size_answers_ = 0;
  openai::ResponseParser parser_;
  // Answer buffers given back by recycle(): a few, each at most k_max_pooled_capacity.
  std::vector<std::vector<float>> spare_vectors_;
  std::vector<std::unique_ptr<Transfer>> idle_;
  std::unordered_map<Transfer*, std::unique_ptr<Transfer>> active_;
  std::vector<Completion> ready_;
};

}  // namespace

util::Result<std::unique_ptr<Provider>> make_openai_provider(const OpenAiOptions& options) {
  if (auto init = openai::init_curl(); !init) return std::unexpected(init.error());
  auto base = openai::checked_base_url(options);  // registers the key as a secret first
  if (!base) return std::unexpected(base.error());
  if (options.model.empty()) return util::fail(util::ErrorCode::invalid_argument, "no model given");
  if (options.encoding_format != "base64" && options.encoding_format != "float") {
    return util::fail(util::ErrorCode::invalid_argument,
                      "encoding_format must be base64 or float, not " + options.encoding_format);
  }
  auto trust = openai::trust_files(options);
  if (!trust) return std::unexpected(trust.error());
  curl_slist* headers = openai::make_headers(options, /*json_body=*/true);

  CURLM* multi = curl_multi_init();
  if (!multi) {
    curl_slist_free_all(headers);
    return util::fail(util::ErrorCode::internal, "curl_multi_init failed");
  }
  const long conns = std::max(1, options.max_connections);
  curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, conns);
  curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, conns);
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, conns);
  return std::unique_ptr<Provider>(
      std::make_unique<OpenAiProvider>(options, *base + "/embeddings", std::move(*trust), multi, headers));
}

}  // namespace lens::provider
