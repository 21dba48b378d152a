// Error and Result types shared by every module: a small closed set of codes,
// classified once where a failure is seen, acted on by the pipeline.
#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace lens::util {

enum class ErrorCode {
  invalid_argument,  // caller passed something malformed (bad flag, bad URL, bad config)
  configuration,     // the setup is wrong: credentials, permissions, endpoint, model, schema
  not_found,         // a file, table, row or model that should exist does not
  transient,         // worth retrying as is: timeouts, resets, 5xx, lost DB connection
  rate_limited,      // provider said 429: retry after the advised delay, slow down
  bad_input,         // the provider rejected one of the inputs (400): isolate, never retry as is
  invalid_response,  // provider answered 2xx with something unusable: retry, then record
  permanent,         // will fail again the same way: record and go on
  fatal,             // the run cannot go on and no setting would fix it (quota exhausted)
  cancelled,         // stopped by a signal or a caller
  internal,          // a bug: an invariant of ours did not hold
};

[[nodiscard]] constexpr std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_argument:
      return "invalid_argument";
    case ErrorCode::configuration:
      return "configuration";
    case ErrorCode::not_found:
      return "not_found";
    case ErrorCode::transient:
      return "transient";
    case ErrorCode::rate_limited:
      return "rate_limited";
    case ErrorCode::bad_input:
      return "bad_input";
    case ErrorCode::invalid_response:
      return "invalid_response";
    case ErrorCode::permanent:
      return "permanent";
    case ErrorCode::fatal:
      return "fatal";
    case ErrorCode::cancelled:
      return "cancelled";
    case ErrorCode::internal:
      return "internal";
  }
  return "unknown";
}

struct [[nodiscard]] Error {
  ErrorCode code = ErrorCode::internal;
  std::string message;

  Error() = default;
  Error(ErrorCode c, std::string msg) : code(c), message(std::move(msg)) {}

  // Retrying the same operation unchanged may succeed.
  [[nodiscard]] bool is_retryable() const {
    return code == ErrorCode::transient || code == ErrorCode::rate_limited ||
           code == ErrorCode::invalid_response;
  }
};

template <typename T>
using Result = std::expected<T, Error>;
using Status = std::expected<void, Error>;

[[nodiscard]] inline std::unexpected<Error> fail(ErrorCode code, std::string message) {
  return std::unexpected<Error>(Error{code, std::move(message)});
}

}  // namespace lens::util
