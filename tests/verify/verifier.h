// lens_verify's core: checks a database's embeddings against the source messages and the
// stand-in provider's deterministic vectors, independently of lens-embed's own SQL.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace lens::verify {

// Which deterministic function produced the vectors.
enum class VectorSource { stand_in, local_hash };

struct VerifyOptions {
  std::string db;  // sqlite:PATH, PATH.db, postgresql://... or a libpq key=value string
  std::string provider = "supermind";
  std::string model = "text-embedding-3-small";
  int dimensions = 0;           // 0: take each row's own dimensions column
  int max_input_tokens = 8191;  // the model's limit, for the expected truncation
  VectorSource vectors = VectorSource::stand_in;
  std::set<std::string> allowed_reasons;  // empty: any non-empty reason is accepted
  std::size_t max_problems = 20;          // examples kept in the report
};

struct VerifyReport {
  std::int64_t messages = 0;
  std::int64_t eligible = 0;  // user messages whose content is not NULL/blank (SQL trim)
  std::int64_t rows = 0;      // rows of (provider, model)
  std::int64_t rows_ok = 0;   // rows whose every field is right
  std::int64_t truncated_rows = 0;
  std::int64_t failures = 0;        // failure rows of (provider, model)
  std::int64_t missing = 0;         // eligible, but neither a row nor a failure
  std::int64_t both = 0;            // a row and a failure at once
  std::int64_t extra_rows = 0;      // rows of messages that are not eligible user messages
  std::int64_t extra_failures = 0;  // failures of messages that are not eligible user messages
  std::int64_t bad_rows = 0;        // wrong answer id, sha256, tokens, truncated flag, dimensions or vector
  std::int64_t bad_failures = 0;    // empty reason, or a reason not allowed
  std::map<std::string, std::int64_t> failures_by_reason;
  std::map<std::string, std::int64_t> problems_by_kind;
  std::vector<std::string> problems;  // the first few, readable
  std::set<std::string> failed_ids;   // for callers that expect particular failures
  std::string error;                  // could not read the database at all

  [[nodiscard]] bool ok() const {
    return error.empty() && missing == 0 && both == 0 && extra_rows == 0 && extra_failures == 0 &&
           bad_rows == 0 && bad_failures == 0 && rows == rows_ok;
  }
  [[nodiscard]] std::string to_json() const;
};

// Reads everything once and checks it. Never throws; a database error lands in `error`.
[[nodiscard]] VerifyReport verify(const VerifyOptions& options);

}  // namespace lens::verify
