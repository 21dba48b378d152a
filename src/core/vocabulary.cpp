// Stable words of the closed vocabularies (see vocabulary.h).
#include "core/vocabulary.h"

#include <algorithm>

namespace lens::core {

std::string_view to_string(FailureReason reason) {
  switch (reason) {
    case FailureReason::context_length:
      return "context_length";
    case FailureReason::empty_input:
      return "empty_input";
    case FailureReason::provider_rejected:
      return "provider_rejected";
    case FailureReason::store_rejected:
      return "store_rejected";
    case FailureReason::invalid_response:
      return "invalid_response";
    case FailureReason::retries_exhausted:
      return "retries_exhausted";
  }
  return "unknown";
}

std::optional<FailureReason> parse_failure_reason(std::string_view word) {
  for (FailureReason r : k_all_failure_reasons) {
    if (to_string(r) == word) return r;
  }
  return std::nullopt;
}

FailureClass failure_class(FailureReason reason) {
  switch (reason) {
    case FailureReason::context_length:
    case FailureReason::empty_input:
    case FailureReason::provider_rejected:
    case FailureReason::store_rejected:
      return FailureClass::permanent;
    case FailureReason::invalid_response:
    case FailureReason::retries_exhausted:
      return FailureClass::transient;
  }
  return FailureClass::transient;
}

std::string_view to_string(FailureClass cls) {
  return cls == FailureClass::permanent ? "permanent" : "transient";
}

// Doubling from one minute: an outage of a few minutes costs a few retries, a provider that
// stays broken for one item is asked about it at most once an hour.
std::chrono::seconds transient_retry_delay(std::int64_t attempts) {
  std::chrono::seconds delay{60};
  for (std::int64_t a = 1; a < attempts && delay < k_transient_retry_cap; ++a)
    delay *= 2;
  return std::min(delay, k_transient_retry_cap);
}

std::string_view to_string(RunStatus status) {
  switch (status) {
    case RunStatus::running:
      return "running";
    case RunStatus::completed:
      return "completed";
    case RunStatus::interrupted:
      return "interrupted";
    case RunStatus::failed:
      return "failed";
  }
  return "unknown";
}

std::optional<RunStatus> parse_run_status(std::string_view word) {
  for (RunStatus s : {RunStatus::running, RunStatus::completed, RunStatus::interrupted, RunStatus::failed}) {
    if (to_string(s) == word) return s;
  }
  return std::nullopt;
}

}  // namespace lens::core
