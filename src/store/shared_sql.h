// What both stores build into their SQL the same way: the retry policy of transient
// failures (core::transient_retry_delay as a CASE expression, so the policy lives in one
// C++ function), the reasons of each failure class, the source columns they read, and
// how failures are counted by class.
#pragma once

#include <fmt/core.h>
#include <array>
#include <string>
#include <string_view>

#include "core/vocabulary.h"

namespace lens::store {

// The source table the stores read, and the columns they need in it. Missing either is a
// configuration error that names it.
inline constexpr std::string_view k_source_table = "messages";
inline constexpr std::array<std::string_view, 6> k_source_columns{"id",      "conversation_id", "role",
                                                                  "content", "created_at",      "updated_at"};

// core::transient_retry_delay(`attempts`) in seconds, as SQL valid in SQLite and PostgreSQL:
// "CASE WHEN a <= 1 THEN 60 WHEN a = 2 THEN 120 ... ELSE 3600 END".
[[nodiscard]] inline std::string transient_delay_seconds_sql(std::string_view attempts) {
  std::string sql = "CASE";
  std::int64_t a = 1;
  for (; core::transient_retry_delay(a) < core::k_transient_retry_cap; ++a) {
    sql += fmt::format(" WHEN {} {} {} THEN {}", attempts, a == 1 ? "<=" : "=", a,
                       core::transient_retry_delay(a).count());
  }
  return sql + fmt::format(" ELSE {} END", core::k_transient_retry_cap.count());
}

// The stored words of every reason of class `cls`, as an SQL list: 'a', 'b'.
[[nodiscard]] inline std::string reasons_sql_list(core::FailureClass cls) {
  std::string out;
  for (core::FailureReason r : core::k_all_failure_reasons) {
    if (core::failure_class(r) != cls) continue;
    out += fmt::format("{}'{}'", out.empty() ? "" : ", ", core::to_string(r));
  }
  return out;
}

// Counts `n` failures of the stored reason `word` (`due` of them due) into their class. A
// reason this binary does not know cannot be retried by it: permanent.
inline void add_failure_counts(const std::string& word, std::int64_t n, std::int64_t due,
                               std::int64_t& permanent, std::int64_t& transient,
                               std::int64_t& transient_due) {
  const auto reason = core::parse_failure_reason(word);
  if (reason && core::failure_class(*reason) == core::FailureClass::transient) {
    transient += n;
    transient_due += due;
  } else {
    permanent += n;
  }
}

}  // namespace lens::store
