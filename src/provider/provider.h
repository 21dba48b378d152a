// The Provider interface: asynchronous embedding requests driven by poll(), so one
// thread can keep many requests in flight (HTTP) or compute in place (local-hash).
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace lens::provider {

struct EmbedRequest {
  std::uint64_t ticket = 0;  // the caller's id, echoed in the Completion
  // REQUIRES: the viewed strings stay alive until this request's Completion is returned
  // by poll() or cancel_all() is called.
  std::vector<std::string_view> inputs;
  std::optional<int> dimensions;  // sent only when set
};

// What the provider's x-ratelimit-* headers said (absent fields were not sent).
struct RateLimitInfo {
  std::optional<double> limit_requests;
  std::optional<double> limit_tokens;
  std::optional<double> remaining_requests;
  std::optional<double> remaining_tokens;
  std::optional<std::chrono::milliseconds> reset_requests;
  std::optional<std::chrono::milliseconds> reset_tokens;
};

struct EmbedSuccess {
  int dimensions = 0;
  // vectors.size() == inputs.size() * dimensions; vector i (in request order, matched by
  // the response's `index`) starts at i * dimensions.
  std::vector<float> vectors;
  std::int64_t prompt_tokens = 0;  // usage.prompt_tokens when reported
};

struct EmbedFailure {
  // transient / rate_limited / invalid_response: retry; bad_input: isolate (split);
  // fatal: stop the run (auth, quota, wrong endpoint); permanent: record.
  util::Error error;
  int http_status = 0;  // 0 when no HTTP answer (timeout, reset)
  // Delay the server asked for (retry-after-ms, retry-after, "try again in", reset).
  std::optional<std::chrono::milliseconds> retry_after;
  // A context-length 400: the input is over the model's token limit.
  bool context_length = false;
};

struct Completion {
  std::uint64_t ticket = 0;
  std::expected<EmbedSuccess, EmbedFailure> result;
  RateLimitInfo rate;
  std::chrono::milliseconds latency{0};
};

class Provider {
 public:
  virtual ~Provider() = default;

  // Starts `request`; never waits on the network.
  virtual void submit(EmbedRequest request) = 0;
  // Drives I/O for at most `timeout` (returns early when something finished) and hands
  // back the finished requests, each exactly once.
  [[nodiscard]] virtual std::vector<Completion> poll(std::chrono::milliseconds timeout) = 0;
  // Submitted requests whose Completion has not been returned yet.
  [[nodiscard]] virtual std::size_t in_flight() const = 0;
  // Abandons every in-flight request; none of them will be returned by poll().
  virtual void cancel_all() = 0;
};

}  // namespace lens::provider
