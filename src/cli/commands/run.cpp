// `run` (and `failures --retry`): settings → store, tokenizer, provider → the pipeline, once
// or, with --follow, until a signal.
#include <fmt/core.h>
#include <unistd.h>
#include <chrono>
#include <string>

#include "cli/commands/commands.h"
#include "cli/commands/common.h"
#include "cli/exit_status.h"
#include "cli/output.h"
#include "pipeline/pipeline.h"

namespace lens::cli {
namespace {

// Names this process in claims (PostgreSQL) and in embedding_runs.worker.
std::string worker_id() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return fmt::format("{}:{}", host, getpid());
}

// REQUIRES: settings made with Uses::provider and Uses::run.
pipeline::RunOptions run_options(const Settings& s, const Flags& flags, bool retry_failures, bool tty) {
  const RunSettings& run = *s.run;
  const ProviderSettings& provider = *s.provider_settings;
  pipeline::RunOptions o;
  o.scope = {s.provider, s.model, flags.force, retry_failures};
  o.model = s.model_spec;
  o.dimensions = provider.dimensions;
  o.batch_size = run.batch_size;
  o.limit = flags.limit;
  o.dry_run = flags.dry_run;
  o.long_input = run.long_input;
  o.max_concurrency = provider.concurrency;
  o.rate = run.rate;
  o.max_attempts = run.max_attempts;
  o.unavailable_after = run.unavailable_after;
  o.follow = flags.follow && !flags.dry_run;
  if (provider.kind == ProviderKind::openai) {
    const std::string variable =
        provider.api_key_env.substr(0, provider.api_key_env.rfind("_API_KEY")) + "_BASE_URL";
    o.endpoint_hint = fmt::format("--base-url / {} (now {})", variable, provider.base_url);
  }
  // A terminal line is redrawn often; a log line every 10 s is enough for a pipe.
  o.progress_interval = tty ? std::chrono::milliseconds(250) : std::chrono::milliseconds(10'000);
  return o;
}

}  // namespace

int cmd_run(const Flags& flags, const RawConfig& config, bool retry_failures) {
  const auto settings = make_settings(config, {.provider = true, .run = true});
  if (!settings) return report(settings.error());
  const Settings& s = *settings;

  StoreOptions so;
  so.worker_id = worker_id();
  so.claims = true;
  // migrate() sizes a new pgvector column: it must know the vectors' size.
  so.vector_dimensions = s.dimensions;
  auto reader = open_migrated(s, so);
  if (!reader) return report(reader.error());
  auto writer = open_store(s.database, so);
  if (!writer) return report(writer.error());
  auto tok = load_tokenizer(s.model_spec);
  if (!tok) return report(tok.error());
  auto provider = make_provider(s);
  if (!provider) return report(provider.error());

  ProgressStyle style;
  style.quiet = flags.quiet;
  style.tty = isatty(STDERR_FILENO) != 0;
  style.format = flags.log_format && *flags.log_format == "json" ? LogFormat::json : LogFormat::logfmt;
  ProgressPrinter printer(style);
  const auto options = run_options(s, flags, retry_failures, style.tty);

  install_signal_handlers();
  const auto& stop = stop_flag();
  pipeline::RunDeps deps{
      **reader,    **writer, **provider, **tok, &printer, &stop, run_arguments_json(config, flags),
      so.worker_id};
  const RunContext ctx{s.provider, s.model, mask_database_url(s.database)};
  // One run, also with --follow: the pipeline keeps passing over the keyset until a signal.
  const auto outcome = pipeline::run_pipeline(options, deps);
  print_run_summary(outcome, ctx, flags.json);
  if (outcome.fatal) return report(*outcome.fatal);
  if (outcome.interrupted) return k_exit_stopped;
  return k_exit_ok;
}

}  // namespace lens::cli
