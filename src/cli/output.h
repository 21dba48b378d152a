// What the user sees: the live progress line (TTY), logfmt/JSON progress lines, the
// final summary, and text or JSON renderings of results. nlohmann/json stays in output.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cli/flags.h"
#include "cli/raw_config.h"
#include "core/model_table.h"
#include "pipeline/pipeline.h"
#include "pipeline/progress.h"
#include "store/store.h"

namespace lens::cli {

enum class LogFormat { logfmt, json };

struct ProgressStyle {
  bool quiet = false;
  bool tty = false;  // one live line on stderr, redrawn in place
  LogFormat format = LogFormat::logfmt;
};

// Progress on stderr: a redrawn line on a terminal, else one logfmt or JSON line per
// snapshot; nothing when quiet. Called from the pipeline's dispatcher thread only.
class ProgressPrinter final : public pipeline::ProgressListener {
 public:
  explicit ProgressPrinter(ProgressStyle style) : style_(style) {}
  void on_progress(const pipeline::ProgressSnapshot& s) override;

 private:
  ProgressStyle style_;
  bool line_open_ = false;
};

// What the Batch API bills against the synchronous endpoint (OpenAI's Batch guide: half).
inline constexpr double k_batch_price_factor = 0.5;

struct RunContext {
  std::string provider, model, database;  // database already masked
  bool batch_api = false;                 // --dry-run --batch-api: the Batch API's price is shown beside
};

// The printers write to stdout, as text for people or (json) one JSON document; every string
// passes through util::redact, and JSON replaces invalid UTF-8 instead of throwing.

// What is left for the run's (provider, model) once it ended.
struct RunAftermath {
  std::int64_t transient_left = 0;  // transient failures (later runs retry them)
  std::string next_retry_at;        // the earliest next_attempt_at among them; "" unknown
};

// A finished run (or dry run): counts, and what is left. The fatal error is not printed
// here (the caller reports it on stderr); --json carries it as "error".
void print_run_summary(const pipeline::RunOutcome& outcome, const RunContext& ctx, const RunAftermath& left,
                       bool json);
// status: `usd_per_million` holds each model's price (the model table's, with the
// configuration's [models."NAME"] applied; nullopt or missing: unknown), for the last 24
// hours' USD: embedding_runs stores tokens, not cost.
void print_status(const store::StatusReport& report,
                  const std::map<std::string, std::optional<double>>& usd_per_million, bool json);
void print_failures(const std::vector<store::FailureRecord>& failures, bool json);
// Hits in the order given (best first); snippets cut to 160 bytes on a UTF-8 boundary.
// How they were ranked (exact scan or which approximate index): the JSON's "method", or a
// line on stderr.
void print_search(const store::SearchResult& found, const std::string& query, bool json);
// The count (and with `with_ids` the ids) of a text's tokens under `spec`'s tokenizer.
void print_tokens(const core::ModelSpec& spec, const std::vector<std::uint32_t>& ids, bool with_ids,
                  bool json);
// describe()'s lines: "key = value (source)", or one JSON object {key: {value, source}}.
void print_config(const std::vector<std::pair<std::string, Sourced>>& settings, bool json);

// embedding_runs.arguments of a run: the configuration as given (raw text, as `config`
// shows it) and the run's switches, as one JSON object with secrets masked.
[[nodiscard]] std::string run_arguments_json(const RawConfig& config, const Flags& flags);

}  // namespace lens::cli
