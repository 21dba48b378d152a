// What the user sees: the live progress line (TTY), logfmt/JSON progress lines, the
// final summary, and JSON renderings of results.
#pragma once

#include <string>

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

class ProgressPrinter final : public pipeline::ProgressListener {
 public:
  explicit ProgressPrinter(ProgressStyle style) : style_(style) {}
  void on_progress(const pipeline::ProgressSnapshot& s) override;

 private:
  ProgressStyle style_;
  bool line_open_ = false;
};

struct RunContext {
  std::string provider, model, database;  // database already masked
};

// Human summary (stdout) or one JSON object (stdout) of a finished run.
void print_run_summary(const pipeline::RunOutcome& outcome, const RunContext& ctx, bool json);
void print_status(const store::StatusReport& report, bool json);
void print_failures(const std::vector<store::FailureRecord>& failures, bool json);
void print_search(const std::vector<store::SearchHit>& hits, const std::string& query, bool json);

}  // namespace lens::cli
