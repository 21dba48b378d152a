// `run` (and each pair of `failures --retry`): settings → store, the dimension check,
// tokenizer, provider → the pipeline (once, or with --follow as one run until a signal) →
// the summary and the exit status.
#include <fmt/core.h>
#include <unistd.h>
#include <chrono>
#include <string>
#include <vector>

#include "cli/commands/commands.h"
#include "cli/commands/common.h"
#include "cli/commands/run_batch.h"
#include "cli/exit_status.h"
#include "cli/output.h"
#include "cli/run_metrics.h"
#include "core/input_definition.h"
#include "core/vocabulary.h"
#include "pipeline/pipeline.h"
#include "util/log.h"

namespace lens::cli {
namespace {

// Names this process in claims (PostgreSQL) and in embedding_runs.worker.
std::string worker_id() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return fmt::format("{}:{}", host, getpid());
}

// REQUIRES: settings made with Uses::provider and Uses::run.
pipeline::RunOptions run_options(const Settings& s, const Flags& flags, bool only_failures, bool tty) {
  const RunSettings& run = *s.run;
  const ProviderSettings& provider = *s.provider_settings;
  pipeline::RunOptions o;
  o.scope = {s.provider, s.model, flags.force, only_failures};
  o.mapping = s.mapping;
  // Without updated_at nothing in the source says an input changed: every run reads and
  // hashes them all (a read, never a provider call for an unchanged one).
  o.scope.rehash = flags.rehash || !s.mapping.has_updated_at();
  o.model = s.model_spec;
  o.dimensions = provider.dimensions;
  if (provider.dimensions) {
    o.expected_dimensions = provider.dimensions;
  } else if (s.dimensions_known) {
    o.expected_dimensions = s.dimensions;
  }
  o.batch_size = run.batch_size;
  o.limit = flags.limit;
  o.dry_run = flags.dry_run;
  o.long_input = run.long_input;
  o.max_concurrency = provider.concurrency;
  o.rate = run.rate;
  o.max_attempts = run.max_attempts;
  o.unavailable_after = run.unavailable_after;
  o.follow_sweep = run.sweep_every;
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

// One (provider, model), one size: rows of another size would be mixed in one vector space,
// and search skips what does not match the query. Checked before anything is sent.
util::Status check_dimensions(const Settings& s, const RawConfig& config,
                              const std::vector<store::PairSummary>& pairs, bool force) {
  if (force || !s.dimensions_known) return {};
  const auto mine = matching(pairs, s.provider, s.model);
  if (mine.empty() || mine[0].dimensions.empty()) return {};
  const auto& stored = mine[0].dimensions;
  if (stored.size() == 1 && stored[0] == s.dimensions) return {};
  std::string sizes;
  for (auto d : stored)
    sizes += (sizes.empty() ? "" : ", ") + std::to_string(d);
  const std::string alias = fmt::format("{}-{}", s.model, s.dimensions);
  const std::string origin = config.dimensions.is_set() ? fmt::format(" ({})", config.dimensions.source) : "";
  return util::fail(
      util::ErrorCode::invalid_argument,
      fmt::format("{} holds rows of {} dimensions; this run would write {}{}. One provider and model keep "
                  "one size. To keep both, give the new size a model name of its own in lens-embed.toml:\n"
                  "  [models.\"{}\"]\n  model = \"{}\"\n  dimensions = {}\nand run with --model {}; or "
                  "re-embed every row at the new size with --force.",
                  pair_name(s.provider, s.model), sizes, s.dimensions, origin, alias,
                  s.provider_settings->model, s.dimensions, alias));
}

// Whether the input texts may have changed since the pair's rows were written because
// what defines them did (core/input_definition.h): then the first pass hashes every input,
// as `run --rehash`, and says why in one line. Sets what the run records once it completed
// such a pass. `failures --retry` neither checks nor records: it reads only the failures.
void check_input_definition(store::Store& store, const Settings& s, const Flags& flags,
                            const std::vector<store::PairSummary>& pairs, bool only_failures,
                            pipeline::RunOptions& o) {
  if (only_failures) return;
  const std::string now = core::input_definition_fingerprint(s.mapping);
  auto stored = store.input_definition(s.provider, s.model);
  const auto mine = matching(pairs, s.provider, s.model);
  const bool has_rows = !mine.empty() && mine[0].rows > 0;
  if (!stored) {
    util::log_warn("reading the input definition: {}; hashing every input of this run",
                   stored.error().message);
    o.rehash_first_pass = true;
  } else if (*stored == now) {
    return;
  } else if (!has_rows) {
    // No row of the pair yet: none can be stale, and every row written from now on is of
    // this definition. Recorded now, so that a first backfill that is stopped or killed
    // does not make its restart hash every input.
    if (flags.dry_run) return;
    auto recorded = store.record_input_definition(s.provider, s.model, now);
    if (recorded) return;
    util::log_warn("recording the input definition: {}; the run records it when it ends",
                   recorded.error().message);
  } else if (!o.scope.rehash) {
    o.rehash_first_pass = true;
    if (stored->empty()) {
      util::log_info(
          "no input definition recorded for {} yet: hashing every input once to re-embed those "
          "whose text changed",
          pair_name(s.provider, s.model));
    } else {
      util::log_info(
          "the input definition changed since the last complete run of {} (template, reply, "
          "filter, roles or mapped columns in [source]): hashing every input to re-embed those "
          "whose text changed, as run --rehash",
          pair_name(s.provider, s.model));
    }
  }
  if (!flags.dry_run) o.record_input_definition = now;
}

// The transient failures left for the pair once the run ended, and the earliest time a
// later run retries one of them. Best effort: a database that does not answer now leaves
// the summary without the line (the run's own end was recorded already).
RunAftermath aftermath(store::Store& store, const Settings& s) {
  RunAftermath a;
  auto pairs = store.pairs();
  if (!pairs) {
    util::log_warn("counting the failures left: {}", pairs.error().message);
    return a;
  }
  const auto mine = matching(*pairs, s.provider, s.model);
  if (mine.empty() || mine[0].failed_transient == 0) return a;
  a.transient_left = mine[0].failed_transient;
  auto failures = store.failures(s.provider, s.model);
  if (!failures) return a;
  for (const auto& f : *failures) {
    if (core::failure_class(f.reason) != core::FailureClass::transient || f.next_attempt_at.empty()) continue;
    if (a.next_retry_at.empty() || f.next_attempt_at < a.next_retry_at) a.next_retry_at = f.next_attempt_at;
  }
  return a;
}

}  // namespace

int cmd_run(const Flags& flags, const RawConfig& config) {
  return run_once(flags, config, false);
}

int run_once(const Flags& flags, const RawConfig& config, bool only_failures) {
  const auto settings = make_settings(config, {.provider = true, .run = true});
  if (!settings) return report(settings.error());
  const Settings& s = *settings;
  const bool batch_api = !only_failures && batch_api_requested(flags, config);
  if (batch_api) {
    if (auto ok = check_batch_mode(flags, config, s, only_failures); !ok) return report(ok.error());
  }

  // First, so that a port in use is a configuration error before the database is touched.
  // `run` only: failures --retry, with the same environment, must not take the daemon's port.
  std::unique_ptr<RunMetrics> metrics;
  std::unique_ptr<metrics::HttpEndpoint> endpoint;
  if (s.run->metrics_addr && !only_failures && !flags.dry_run) {
    const auto target = parse_database_url(s.database);
    metrics = std::make_unique<RunMetrics>(
        RunMetrics::Context{s.provider, s.model, LENS_VERSION, s.model_spec.usd_per_million_tokens,
                            target && target->kind == DatabaseKind::postgres});
    auto served = serve_metrics(*s.run->metrics_addr, *metrics);
    if (!served) return report(served.error());
    endpoint = std::move(*served);
  }

  StoreOptions so;
  so.access = store::AccessMode::read_write;
  so.wait_for_writer = !flags.no_wait;
  so.worker_id = worker_id();
  so.claims = true;
  // migrate() sizes a new pgvector column: it must know the vectors' size.
  so.vector_dimensions = s.dimensions;
  so.mapping = s.mapping;
  auto reader = open_migrated(s, so);
  if (!reader) return report(reader.error());
  auto writer = open_store(s.database, so);
  if (!writer) return report(writer.error());
  {
    auto pairs = (*reader)->pairs();
    if (!pairs) return report(pairs.error());
    if (auto ok = check_dimensions(s, config, *pairs, flags.force); !ok) return report(ok.error());
  }
  auto tok = load_tokenizer(s.model_spec);
  if (!tok) return report(tok.error());
  auto provider = make_provider(s);
  if (!provider) return report(provider.error());

  ProgressStyle style;
  style.quiet = flags.quiet;
  style.tty = isatty(STDERR_FILENO) != 0;
  style.format = flags.log_format && *flags.log_format == "json" ? LogFormat::json : LogFormat::logfmt;
  ProgressPrinter printer(style);
  auto options = run_options(s, flags, only_failures, style.tty);
  // init --track-changes: the change queue names what changed, so a source without
  // updated_at need not have every input hashed (--rehash still does). --batch-api reads
  // it too; its entries are dropped by the next synchronous pass (unchanged inputs are touched).
  if (!only_failures) {
    auto tracking = (*reader)->change_tracking();
    if (!tracking) return report(tracking.error());
    if (tracking->installed) {
      options.scope.changes = true;
      options.scope.rehash = flags.rehash;
      util::log_debug("change tracking: {} queued changes", tracking->queued);
    }
  }
  if (batch_api && !flags.dry_run) {
    return run_batch(flags, config, s, options, **writer, **tok, run_arguments_json(config, flags),
                     so.worker_id);
  }
  {
    auto pairs = (*reader)->pairs();
    if (!pairs) return report(pairs.error());
    check_input_definition(**reader, s, flags, *pairs, only_failures, options);
  }

  install_signal_handlers();
  const auto& stop = stop_flag();
  pipeline::RunDeps deps{
      **reader,     **writer,     **provider, **tok, &printer, &stop, run_arguments_json(config, flags),
      so.worker_id, metrics.get()};
  const RunContext ctx{s.provider, s.model, mask_database_url(s.database), batch_api};
  // One run, also with --follow: the pipeline keeps passing over the keyset until a signal.
  const auto outcome = pipeline::run_pipeline(options, deps);
  const RunAftermath left = outcome.dry_run || outcome.run_id == 0 ? RunAftermath{} : aftermath(**writer, s);
  print_run_summary(outcome, ctx, left, flags.json);
  if (outcome.fatal) return report(*outcome.fatal);
  if (outcome.interrupted || left.transient_left > 0) return k_exit_stopped;
  return k_exit_ok;
}

}  // namespace lens::cli
