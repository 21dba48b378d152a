// The closed vocabularies stored in lens-embed's tables: failure reasons (with the class
// that decides whether a later run retries them) and run statuses. Each value has one
// stable word; these functions are the only place that converts between the two.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace lens::core {

// Why an exchange has a row in embedding_failures.
enum class FailureReason {
  context_length,     // over the model's token limit even after truncation/chunking
  empty_input,        // user message blank by Unicode White_Space (blank by ASCII is never read)
  provider_rejected,  // the provider refused this one input (400 other than context length)
  store_rejected,     // the database refused the row (e.g. a value it cannot store)
  invalid_response,   // the provider kept answering with something unusable for it
  retries_exhausted,  // transient failures (5xx, 429, timeouts) used up every attempt
};

inline constexpr std::array k_all_failure_reasons{
    FailureReason::context_length, FailureReason::empty_input,      FailureReason::provider_rejected,
    FailureReason::store_rejected, FailureReason::invalid_response, FailureReason::retries_exhausted,
};

// Permanent: the input itself is the cause; it stays failed until the message is edited or
// `failures --retry`. Transient: the cause was outside the input; later runs retry it.
enum class FailureClass { permanent, transient };

[[nodiscard]] std::string_view to_string(FailureReason reason);
[[nodiscard]] std::optional<FailureReason> parse_failure_reason(std::string_view word);
[[nodiscard]] FailureClass failure_class(FailureReason reason);
[[nodiscard]] std::string_view to_string(FailureClass cls);

// How long a transient failure waits before a later run offers it again, after its
// `attempts`-th recorded failure: 1 minute, doubling with each attempt, capped at 1 hour
// (1, 2, 4, 8, 16, 32, 60, 60, ... minutes). The stores turn it into
// embedding_failures.next_attempt_at = last_failed_at + this. attempts < 1 counts as 1.
[[nodiscard]] std::chrono::seconds transient_retry_delay(std::int64_t attempts);
inline constexpr std::chrono::seconds k_transient_retry_cap{3600};

// embedding_runs.status.
enum class RunStatus {
  running,      // started, not finished (or its process died: see finished_at)
  completed,    // every eligible exchange was embedded or permanently failed
  interrupted,  // stopped by a signal (or --limit) with work left
  failed,       // stopped by an error (provider unavailable, database lost, configuration)
};

[[nodiscard]] std::string_view to_string(RunStatus status);
[[nodiscard]] std::optional<RunStatus> parse_run_status(std::string_view word);

}  // namespace lens::core
