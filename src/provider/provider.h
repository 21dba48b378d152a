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
  // Checked, never sent: the size every vector of the answer must have (`dimensions` when
  // that is set). Unset: the first vector of each answer sets it.
  std::optional<int> expected_dimensions;
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

// A request that did not produce vectors, classified once here, where the answer is seen;
// the caller (the pipeline's dispatcher) decides what to do about each class:
//   transient         no answer, 5xx, 408/409: retry as is
//   rate_limited      429: retry after `retry_after`, slow down
//   invalid_response  2xx whose body is unusable (count, index, dimensions, NaN): retry
//   bad_input         400/413/422 about an input: split the request to find it, never retry
//                     the same input (context_length says whether it was too long)
//   configuration     401/403 (key), 404 (base URL, model), a server certificate that fails
//                     verification, an unreadable CA file: the user must fix the setup
//   fatal             exhausted quota, bad URL, rejected parameters, redirect:
//                     no request can succeed, stop
//   permanent         any other refusal: record the inputs, go on
//   internal          our own setup failed (e.g. no curl handle)
struct EmbedFailure {
  util::Error error;    // the message may quote the answer: redact it before storing
  int http_status = 0;  // 0 when no HTTP answer (timeout, reset)
  // Delay the server asked for (retry-after-ms, retry-after, "try again in", reset).
  std::optional<std::chrono::milliseconds> retry_after;
  // A context-length 400: the input is over the model's token limit.
  bool context_length = false;
};

struct Completion {
  std::uint64_t ticket = 0;  // the request's ticket
  std::expected<EmbedSuccess, EmbedFailure> result;
  RateLimitInfo rate;
  std::chrono::milliseconds latency{0};
};

// Thread safety: not thread-safe. One thread at a time calls every method of one
// Provider (the pipeline: its dispatcher thread; search: the cli's thread). A Provider
// is owned by whoever made it (make_openai_provider, LocalHashProvider) and must outlive
// its requests. No method throws, and none reports failure itself: a request that fails
// comes back from poll() as a Completion holding an EmbedFailure.
class Provider {
 public:
  virtual ~Provider() = default;

  // Starts `request` and returns without waiting on the network. Every submitted request
  // ends exactly once: its Completion is returned by a later poll(), or cancel_all()
  // drops it. Even a request that cannot be started (no connection handle) is answered
  // through poll(), with a failure. Tickets are the caller's; the provider only echoes them.
  virtual void submit(EmbedRequest request) = 0;
  // Drives I/O for at most `timeout`, returning early once something finished, and hands
  // back the requests that finished, each exactly once and owned by the caller. Returns
  // at once (possibly empty) when nothing is in flight.
  [[nodiscard]] virtual std::vector<Completion> poll(std::chrono::milliseconds timeout) = 0;
  // Submitted requests whose Completion has not been returned yet.
  [[nodiscard]] virtual std::size_t in_flight() const = 0;
  // Abandons every in-flight request (their connections are closed or reused); none of
  // them will be returned by poll(), and their inputs are no longer referenced.
  virtual void cancel_all() = 0;
  // Hands back the buffer of an EmbedSuccess whose values the caller has used: a provider
  // may decode a later answer into it instead of allocating (and faulting in) megabytes
  // per response. Optional for both sides.
  virtual void recycle(std::vector<float>&& vectors) { (void)vectors; }
};

}  // namespace lens::provider
