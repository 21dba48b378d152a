// The stand-in provider: cpp-httplib server, simdjson request parsing, exact token counts,
// token buckets for RPM/TPM and the fault switchboard.
#include "stand_in_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "stand_in_billing.h"
#include "stand_in_common.h"
#include "stand_in_vector.h"
#include "tokenizer/tokenizer.h"

namespace lens::stand_in {
namespace {

using Clock = std::chrono::steady_clock;

// A token bucket like the limiter in front of OpenAI's API: refills continuously, holds
// burst_seconds of refill, lets a request larger than the bucket through when it is full
// (going negative), so one big request cannot be refused forever.
class Bucket {
 public:
  Bucket(double per_minute, double burst_seconds)
      : rate_(per_minute / 60.0),
        capacity_(std::max(1.0, rate_ * burst_seconds)),
        level_(capacity_),
        last_(Clock::now()) {}
  [[nodiscard]] bool unlimited() const { return rate_ <= 0; }
  void refill(Clock::time_point now) {
    const double secs = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    level_ = std::min(capacity_, level_ + secs * rate_);
  }
  [[nodiscard]] bool has(double amount) const { return unlimited() || level_ >= std::min(amount, capacity_); }
  void take(double amount) {
    if (!unlimited()) level_ -= amount;
  }
  // Milliseconds until `amount` (capped at capacity) is there.
  [[nodiscard]] double wait_ms(double amount) const {
    if (unlimited()) return 0;
    const double need = std::min(amount, capacity_) - level_;
    return need <= 0 ? 0 : need / rate_ * 1000.0;
  }
  [[nodiscard]] double remaining() const { return std::max(0.0, std::floor(level_)); }
  // Until the bucket is full again, as OpenAI's x-ratelimit-reset-* say: a request larger
  // than the bucket leaves a debt (a negative level) that is repaid first.
  [[nodiscard]] double reset_ms() const { return unlimited() ? 0 : (capacity_ - level_) / rate_ * 1000.0; }
  void fill() { level_ = capacity_; }

 private:
  double rate_, capacity_, level_;
  Clock::time_point last_;
};

std::string ms_text(double ms) {
  // OpenAI's style: "20ms" below a second, "1.5s" above.
  char buf[32];
  if (ms < 1000) {
    std::snprintf(buf, sizeof buf, "%dms", static_cast<int>(std::ceil(ms)));
  } else {
    std::snprintf(buf, sizeof buf, "%.3gs", ms / 1000.0);
  }
  return buf;
}

enum class Fault {
  none,
  rate_429,
  s500,
  s502,
  s503,
  reset,
  hang,
  malformed,
  truncated,
  short_data,
  nan,
  bad_dims
};

const char* fault_name(Fault f) {
  switch (f) {
    case Fault::none:
      return "none";
    case Fault::rate_429:
      return "injected_429";
    case Fault::s500:
      return "status_500";
    case Fault::s502:
      return "status_502";
    case Fault::s503:
      return "status_503";
    case Fault::reset:
      return "reset";
    case Fault::hang:
      return "hang";
    case Fault::malformed:
      return "malformed";
    case Fault::truncated:
      return "truncated";
    case Fault::short_data:
      return "short";
    case Fault::nan:
      return "nan";
    case Fault::bad_dims:
      return "bad_dims";
  }
  return "?";
}

}  // namespace

struct StandInServer::Impl {
  StandInOptions o;
  httplib::Server svr;
  std::thread thread;
  int port = -1;
  std::shared_ptr<const tokenizer::Tokenizer> tok;

  std::mutex mu;  // buckets, rng, stats
  Bucket requests_bucket;
  Bucket tokens_bucket;
  std::mt19937_64 rng;
  std::map<std::string, std::int64_t> counters;
  Clock::time_point started = Clock::now();
  std::optional<Clock::time_point> first_admitted, last_ok;
  std::int64_t faults_injected = 0;
  std::atomic<int> outage{0};  // set_outage

  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopping = false;

  Billing billing;
  std::unique_ptr<BatchService> batch;

  explicit Impl(StandInOptions opts)
      : o(std::move(opts)),
        requests_bucket(o.rpm, o.burst_seconds),
        tokens_bucket(o.tpm, o.burst_seconds),
        rng(o.seed) {
    if (o.exact_tokens) {
      if (auto t = tokenizer::Tokenizer::load(tokenizer::Encoding::cl100k_base)) {
        tok = *t;
      } else {
        std::fprintf(stderr, "stand-in: cl100k_base not loadable (%s); counting tokens as bytes/4\n",
                     t.error().message.c_str());
      }
    }
    batch = std::make_unique<BatchService>(
        o.batch, BatchHost{o.api_key, o.models, o.default_dimensions, o.max_input_tokens, o.reject_marker,
                           [this](std::string_view text) { return count_tokens(text); }, &billing});
  }

  void bump(const std::string& name, std::int64_t by = 1) { counters[name] += by; }

  // Sleeps unless the server stops first.
  void sleep_ms(double ms) {
    std::unique_lock lock(stop_mu);
    stop_cv.wait_for(lock, std::chrono::duration<double, std::milli>(ms), [&] { return stopping; });
  }

  std::size_t count_tokens(std::string_view text) const {
    if (tok) return tok->count(text);
    return (text.size() + 3) / 4;
  }

  void set_rate_headers(httplib::Response& res) {
    // Called with mu held.
    if (!requests_bucket.unlimited()) {
      res.set_header("x-ratelimit-limit-requests", std::to_string(static_cast<long long>(o.rpm)));
      res.set_header("x-ratelimit-remaining-requests",
                     std::to_string(static_cast<long long>(requests_bucket.remaining())));
      res.set_header("x-ratelimit-reset-requests", ms_text(requests_bucket.reset_ms()));
    }
    if (!tokens_bucket.unlimited()) {
      res.set_header("x-ratelimit-limit-tokens", std::to_string(static_cast<long long>(o.tpm)));
      res.set_header("x-ratelimit-remaining-tokens",
                     std::to_string(static_cast<long long>(tokens_bucket.remaining())));
      res.set_header("x-ratelimit-reset-tokens", ms_text(tokens_bucket.reset_ms()));
    }
  }

  void handle(const httplib::Request& req, httplib::Response& res);
  void answer(const httplib::Request& req, httplib::Response& res,
              const std::vector<std::string_view>& inputs, int dims, bool base64, Fault fault,
              std::uint64_t rng_seed);
};

void StandInServer::Impl::handle(const httplib::Request& req, httplib::Response& res) {
  {
    std::lock_guard lock(mu);
    bump("requests");
  }
  auto reply = [&](int status, const std::string& body, const char* counter) {
    res.status = status;
    res.set_content(body, "application/json");
    std::lock_guard lock(mu);
    bump(counter);
  };
  if (const int status = outage.load(); status != 0) {
    reply(status,
          error_json("The server is currently unavailable (stand-in outage).", "server_error", "", ""),
          "outage");
    return;
  }
  if (!o.api_key.empty()) {
    const std::string auth = req.get_header_value("Authorization");
    if (auth != "Bearer " + o.api_key) {
      // OpenAI echoes a masked key: the first 3 and last 4 characters.
      std::string shown = auth.starts_with("Bearer ") ? auth.substr(7) : auth;
      if (shown.size() > 8)
        shown = shown.substr(0, 3) + std::string(shown.size() - 7, '*') + shown.substr(shown.size() - 4);
      const std::string msg =
          auth.empty() ? "You didn't provide an API key. You need to provide your API key in an "
                         "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                       : "Incorrect API key provided: " + shown +
                             ". You can find your API key at https://platform.openai.com/account/api-keys.";
      reply(401, error_json(msg, "invalid_request_error", "", auth.empty() ? "" : "invalid_api_key"),
            "status_401");
      return;
    }
  }

  // ---- parse ----
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string model;
  std::vector<std::string_view> inputs;
  int dims = o.default_dimensions;
  bool base64 = false;
  bool dims_sent = false;
  try {
    doc = parser.parse(req.body);
    model = std::string(std::string_view(doc["model"].get_string()));
    simdjson::dom::element input = doc["input"];
    if (input.is_string()) {
      inputs.push_back(input.get_string());
    } else {
      for (simdjson::dom::element e : input.get_array())
        inputs.push_back(e.get_string());
    }
    std::string_view fmt = "float";
    if (auto f = doc["encoding_format"]; f.error() == simdjson::SUCCESS) fmt = f.get_string();
    if (fmt != "float" && fmt != "base64") {
      reply(400,
            error_json("Invalid value for 'encoding_format': expected 'float' or 'base64'.",
                       "invalid_request_error", "encoding_format", ""),
            "status_400_other");
      return;
    }
    base64 = fmt == "base64";
    if (auto d = doc["dimensions"]; d.error() == simdjson::SUCCESS) {
      dims = static_cast<int>(std::int64_t(d.get_int64()));
      dims_sent = true;
    }
  } catch (const simdjson::simdjson_error& e) {
    reply(
        400,
        error_json(std::string("We could not parse the JSON body of your request. (HINT: ") + e.what() + ")",
                   "invalid_request_error", "", ""),
        "status_400_other");
    return;
  }
  if (!o.models.empty()) {
    bool known = false;
    std::string_view list = o.models;
    while (!list.empty()) {
      const auto comma = list.find(',');
      if (list.substr(0, comma) == model) known = true;
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    }
    if (!known) {
      reply(404,
            error_json("The model `" + model + "` does not exist or you do not have access to it.",
                       "invalid_request_error", "", "model_not_found"),
            "status_404");
      return;
    }
  }
  if (inputs.empty() || inputs.size() > 2048) {
    reply(400,
          error_json("'$.input' is invalid. Please check the API reference: "
                     "https://platform.openai.com/docs/api-reference.",
                     "invalid_request_error", "", ""),
          "status_400_other");
    return;
  }
  if (dims_sent && (dims < 1 || dims > 3072)) {
    reply(400,
          error_json("This model does not support specifying dimensions.", "invalid_request_error",
                     "dimensions", ""),
          "status_400_other");
    return;
  }
  if (base64 && o.reject_base64) {
    reply(400,
          error_json("Invalid value for 'encoding_format': this server supports only 'float'.",
                     "invalid_request_error", "encoding_format", ""),
          "status_400_other");
    return;
  }
  if (o.float_only) base64 = false;

  // ---- tokens and context length ----
  std::size_t total_tokens = 0;
  for (auto in : inputs) {
    std::size_t n = count_tokens(in);
    const bool marked = !o.reject_marker.empty() && in.find(o.reject_marker) != std::string_view::npos;
    if (marked) n = std::max<std::size_t>(n, static_cast<std::size_t>(o.max_input_tokens) + 1);
    if (n > static_cast<std::size_t>(o.max_input_tokens) || in.empty()) {
      const std::string msg =
          in.empty()
              ? std::string(
                    "'$.input' is invalid. Please check the API reference: "
                    "https://platform.openai.com/docs/api-reference.")
              : "This model's maximum context length is " + std::to_string(o.max_input_tokens + 1) +
                    " tokens, however you requested " + std::to_string(n) + " tokens (" + std::to_string(n) +
                    " in your prompt; 0 for the completion). Please reduce your prompt; or completion "
                    "length.";
      reply(400, error_json(msg, "invalid_request_error", "", ""),
            in.empty() ? "status_400_other" : "status_400_context");
      return;
    }
    total_tokens += n;
  }
  if (total_tokens > 300'000) {
    reply(400,
          error_json("Requested " + std::to_string(total_tokens) + " tokens, max 300000 tokens per request",
                     "max_tokens_per_request", "", "max_tokens_per_request"),
          "status_400_other");
    return;
  }

  // ---- quota, rate limits, fault draw (one lock) ----
  Fault fault = Fault::none;
  std::uint64_t rng_seed = 0;
  double latency = o.latency_ms;
  {
    std::lock_guard lock(mu);
    const auto now = Clock::now();
    if (o.quota_exhausted) {
      res.status = 429;
      res.set_content(
          error_json("You exceeded your current quota, please check your plan and billing details. For "
                     "more information on this error, read the docs: "
                     "https://platform.openai.com/docs/guides/error-codes/api-errors.",
                     "insufficient_quota", "", "insufficient_quota"),
          "application/json");
      bump("status_429_quota");
      return;
    }
    if (!o.frozen_buckets) {
      requests_bucket.refill(now);
      tokens_bucket.refill(now);
    }
    const double tokens = static_cast<double>(total_tokens);
    const bool req_ok = requests_bucket.has(1);
    const bool tok_ok = tokens_bucket.has(tokens);
    std::uniform_real_distribution<double> u(0, 1);
    const bool may_fault = o.fault_limit < 0 || faults_injected < o.fault_limit;
    const bool spurious = may_fault && o.p_429 > 0 && u(rng) < o.p_429;
    if (!req_ok || !tok_ok || spurious) {
      const bool on_tokens = !tok_ok;
      const double wait =
          std::max({on_tokens ? tokens_bucket.wait_ms(tokens) : requests_bucket.wait_ms(1), 1.0});
      const std::string what =
          on_tokens
              ? "tokens per min (TPM): Limit " + std::to_string(static_cast<long long>(o.tpm)) + ", Used " +
                    std::to_string(
                        static_cast<long long>(o.tpm - tokens_bucket.remaining() * 60.0 / o.burst_seconds)) +
                    ", Requested " + std::to_string(total_tokens)
              : "requests per min (RPM): Limit " + std::to_string(static_cast<long long>(o.rpm)) + ", Used " +
                    std::to_string(static_cast<long long>(o.rpm - requests_bucket.remaining() * 60.0 /
                                                                      o.burst_seconds)) +
                    ", Requested 1";
      res.status = 429;
      set_rate_headers(res);
      if (o.retry_after_headers) {
        res.set_header("retry-after-ms", std::to_string(static_cast<long long>(std::ceil(wait))));
        res.set_header("retry-after", std::to_string(static_cast<long long>(std::ceil(wait / 1000.0))));
      }
      res.set_content(error_json("Rate limit reached for " + model + " in organization org-stand-in on " +
                                     what + ". Please try again in " + ms_text(wait) +
                                     ". Visit https://platform.openai.com/account/rate-limits to learn more.",
                                 on_tokens ? "tokens" : "requests", "", "rate_limit_exceeded"),
                      "application/json");
      bump(spurious && req_ok && tok_ok ? "fault_injected_429" : "status_429_rate_limit");
      if (spurious && req_ok && tok_ok) ++faults_injected;
      return;
    }
    requests_bucket.take(1);
    tokens_bucket.take(tokens);
    if (!first_admitted) first_admitted = now;
    bump("admitted_requests");
    bump("admitted_tokens", static_cast<std::int64_t>(total_tokens));
    if (may_fault) {
      const std::pair<double, Fault> table[] = {{o.p_500, Fault::s500},
                                                {o.p_502, Fault::s502},
                                                {o.p_503, Fault::s503},
                                                {o.p_reset, Fault::reset},
                                                {o.p_hang, Fault::hang},
                                                {o.p_malformed, Fault::malformed},
                                                {o.p_truncated, Fault::truncated},
                                                {o.p_short, Fault::short_data},
                                                {o.p_nan, Fault::nan},
                                                {o.p_bad_dims, Fault::bad_dims}};
      for (const auto& [p, f] : table) {
        if (p > 0 && u(rng) < p) {
          fault = f;
          break;
        }
      }
      if (fault != Fault::none) {
        ++faults_injected;
        bump(std::string("fault_") + fault_name(fault));
      }
    }
    if (o.latency_jitter_ms > 0) latency += u(rng) * o.latency_jitter_ms;
    rng_seed = rng();
    set_rate_headers(res);
  }
  latency += o.latency_per_1k_tokens_ms * static_cast<double>(total_tokens) / 1000.0;

  if (fault == Fault::reset) {
    reset_connection(req.remote_addr, req.remote_port);
    return;
  }
  if (fault == Fault::hang) {
    sleep_ms(o.hang_ms);
    reset_connection(req.remote_addr, req.remote_port);
    return;
  }
  if (latency > 0) sleep_ms(latency);
  if (fault == Fault::s500 || fault == Fault::s502 || fault == Fault::s503) {
    const int status = fault == Fault::s500 ? 500 : fault == Fault::s502 ? 502 : 503;
    if (status == 502) {
      res.status = 502;
      res.set_content(
          "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad "
          "Gateway</h1></center>\r\n</body>\r\n</html>\r\n",
          "text/html");
    } else {
      res.status = status;
      res.set_content(
          error_json(status == 500
                         ? "The server had an error while processing your request. Sorry about that!"
                         : "The engine is currently overloaded, please try again later.",
                     status == 500 ? "server_error" : "service_unavailable", "", ""),
          "application/json");
    }
    return;
  }
  answer(req, res, inputs, dims, base64, fault, rng_seed);
  std::lock_guard lock(mu);
  if (fault == Fault::none) {
    billing.add_sync(inputs);
    bump("ok_requests");
    bump("ok_inputs", static_cast<std::int64_t>(inputs.size()));
    bump("ok_tokens", static_cast<std::int64_t>(total_tokens));
    last_ok = Clock::now();
  }
}

void StandInServer::Impl::answer(const httplib::Request&, httplib::Response& res,
                                 const std::vector<std::string_view>& inputs, int dims, bool base64,
                                 Fault fault, std::uint64_t rng_seed) {
  std::mt19937_64 r(rng_seed);
  std::vector<std::size_t> order(inputs.size());
  std::iota(order.begin(), order.end(), 0);
  if (o.shuffle) std::shuffle(order.begin(), order.end(), r);
  if (fault == Fault::short_data && order.size() > 0) order.pop_back();
  const std::size_t victim = inputs.empty() ? 0 : r() % inputs.size();
  std::size_t total_tokens = 0;
  for (auto in : inputs)
    total_tokens += count_tokens(in);

  std::string body;
  const auto d = static_cast<std::size_t>(dims);
  body.reserve(64 + inputs.size() * (base64 ? d * 16 / 3 + 80 : d * 12 + 80));
  body += "{\n  \"object\": \"list\",\n  \"data\": [\n";
  std::vector<float> v(d);
  char num[32];
  for (std::size_t k = 0; k < order.size(); ++k) {
    const std::size_t i = order[k];
    stand_in_vector(inputs[i], v);
    std::size_t len = d;
    if (i == victim && fault == Fault::nan) v[len / 2] = std::nanf("");
    if (i == victim && fault == Fault::bad_dims) --len;
    if (k) body += ",\n";
    body += "    {\n      \"object\": \"embedding\",\n      \"index\": ";
    body += std::to_string(i);
    body += ",\n      \"embedding\": ";
    if (base64) {
      body += '"';
      append_base64(body, reinterpret_cast<const unsigned char*>(v.data()), len * 4);
      body += '"';
    } else {
      body += '[';
      for (std::size_t j = 0; j < len; ++j) {
        if (j) body += ',';
        if (std::isnan(v[j])) {
          body += "NaN";  // what a careless server emits; not JSON
          continue;
        }
        const auto [end, ec] = std::to_chars(num, num + sizeof num, v[j]);
        body.append(num, static_cast<std::size_t>(end - num));
      }
      body += ']';
    }
    body += "\n    }";
  }
  body += "\n  ],\n  \"model\": \"text-embedding-3-small\",\n  \"usage\": {\n    \"prompt_tokens\": ";
  body += std::to_string(total_tokens);
  body += ",\n    \"total_tokens\": ";
  body += std::to_string(total_tokens);
  body += "\n  }\n}\n";
  if (fault == Fault::malformed)
    body =
        "{\"object\": \"list\", \"data\": [{\"object\": \"embedding\", \"index\": 0, \"embedding\": <!-- "
        "upstream error -->";
  if (fault == Fault::truncated) body.resize(body.size() / 2);
  res.status = 200;
  res.set_header("openai-processing-ms", "150");
  res.set_content(std::move(body), "application/json");
}

StandInServer::StandInServer(StandInOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

StandInServer::~StandInServer() {
  stop();
}

int StandInServer::start() {
  Impl& m = *impl_;
  const int threads = std::max(4, m.o.threads);
  m.svr.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
  m.svr.set_keep_alive_max_count(1'000'000);
  m.svr.set_keep_alive_timeout(120);
  m.svr.set_read_timeout(120);
  m.svr.set_write_timeout(120);
  m.svr.set_payload_max_length(256u << 20);
  auto embeddings = [&m](const httplib::Request& req, httplib::Response& res) {
    try {
      m.handle(req, res);
    } catch (const std::exception& e) {
      res.status = 500;
      res.set_content(error_json(std::string("stand-in bug: ") + e.what(), "server_error", "", ""),
                      "application/json");
    }
  };
  m.svr.Post("/v1/embeddings", embeddings);
  m.svr.Post("/embeddings", embeddings);
  m.svr.Get("/stats", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(stats_json(), "application/json");
  });
  m.svr.Post("/stats/reset", [this](const httplib::Request&, httplib::Response& res) {
    reset_stats();
    res.set_content("{}\n", "application/json");
  });
  m.batch->register_routes(m.svr);
  m.svr.Post("/outage", [this](const httplib::Request& req, httplib::Response& res) {
    set_outage(req.has_param("status") ? std::stoi(req.get_param_value("status")) : 0);
    res.set_content("{}\n", "application/json");
  });
  m.svr.Get("/health",
            [](const httplib::Request&, httplib::Response& res) { res.set_content("ok\n", "text/plain"); });
  if (m.o.port == 0) {
    m.port = m.svr.bind_to_any_port(m.o.host);
  } else {
    m.port = m.svr.bind_to_port(m.o.host, m.o.port) ? m.o.port : -1;
  }
  if (m.port <= 0) return -1;
  m.thread = std::thread([&m] { m.svr.listen_after_bind(); });
  return m.port;
}

void StandInServer::stop() {
  Impl& m = *impl_;
  {
    std::lock_guard lock(m.stop_mu);
    m.stopping = true;
  }
  m.stop_cv.notify_all();
  m.batch->stop();
  m.svr.stop();
  if (m.thread.joinable()) m.thread.join();
}

int StandInServer::port() const {
  return impl_->port;
}

std::string StandInServer::stats_json() const {
  Impl& m = *impl_;
  std::lock_guard lock(m.mu);
  std::string s = "{";
  for (const auto& [k, v] : m.counters)
    s += "\"" + k + "\":" + std::to_string(v) + ",";
  auto secs = [&](const std::optional<Clock::time_point>& t) {
    return t ? std::chrono::duration<double>(*t - m.started).count() : 0.0;
  };
  char buf[256];
  std::snprintf(
      buf, sizeof buf,
      "\"first_admitted_s\":%.3f,\"last_ok_s\":%.3f,\"now_s\":%.3f,\"rpm_limit\":%.0f,\"tpm_limit\":%.0f,"
      "\"exact_tokens\":%s}",
      secs(m.first_admitted), secs(m.last_ok),
      std::chrono::duration<double>(Clock::now() - m.started).count(), m.o.rpm, m.o.tpm,
      m.tok ? "true" : "false");
  return s + std::string(buf, std::strlen(buf) - 1) + m.batch->stats_fields() + "}";
}

BatchService& StandInServer::batch() {
  return *impl_->batch;
}

void StandInServer::set_outage(int http_status) {
  impl_->outage = http_status;
}

void StandInServer::reset_stats() {
  Impl& m = *impl_;
  m.batch->reset_stats();
  std::lock_guard lock(m.mu);
  m.counters.clear();
  m.first_admitted.reset();
  m.last_ok.reset();
  m.started = Clock::now();
  m.faults_injected = 0;
  m.requests_bucket.refill(m.started);
  m.tokens_bucket.refill(m.started);
  m.requests_bucket.fill();
  m.tokens_bucket.fill();
}

}  // namespace lens::stand_in
