// Command-line front end: every flag defined once with its help text, then the dispatch:
// .env, flags (CLI11), the raw configuration (phase one, once), one command.
#include "cli/app.h"

#include <fmt/core.h>
#include <fmt/format.h>
#include <malloc.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string_view>
#include <vector>

#include "cli/commands/commands.h"
#include "cli/dotenv.h"
#include "cli/exit_status.h"
#include "cli/flags.h"
#include "cli/generated_docs.h"
#include "cli/raw_config.h"
#include "cli/suggest.h"
#include "util/edit_distance.h"
#include "util/log.h"
#include "util/redact.h"

namespace lens::cli {
namespace {

// The flags several commands share, each defined here once; a command whose use of a flag
// differs gives its own help line.
class SharedFlags {
 public:
  explicit SharedFlags(Flags& f) : f_(f) {}

  void db(CLI::App* c) const {
    c->add_option("--db", f_.db,
                  "Database: sqlite:PATH, postgresql://USER@HOST/DB or a libpq string "
                  "(env LENS_DATABASE_URL, DATABASE_URL; default sqlite:lens.db)");
  }
  void config(CLI::App* c, const char* help = "Config file (default ./lens-embed.toml)") const {
    c->add_option("--config", f_.config_path, help);
  }
  void provider(
      CLI::App* c,
      const char* help = "local-hash (offline, lexical), supermind, openai, or one from the config") const {
    c->add_option("--provider", f_.provider, help);
  }
  void model(CLI::App* c,
             const char* help = "Embedding model (default per provider, e.g. text-embedding-3-large)") const {
    c->add_option("--model", f_.model, help);
  }
  void dimensions(CLI::App* c, const char* help = "Output dimensions, for models that accept them") const {
    c->add_option("--dimensions", f_.dimensions, help)->check(CLI::PositiveNumber);
  }
  // For the commands that name a provider: run, failures, search, config.
  void provider_group(CLI::App* c) const {
    provider(c);
    model(c);
    c->add_option("--base-url", f_.base_url,
                  "Provider base URL; POST {base-url}/embeddings (env <PROVIDER>_BASE_URL)");
    dimensions(c);
    c->add_flag("--insecure", f_.insecure, "Do not verify TLS certificates (prints a warning)");
    c->add_option("--ca-cert", f_.ca_cert,
                  "PEM file of the CAs that sign the provider's certificate (env <PROVIDER>_CA_CERT)");
    c->add_option("--timeout", f_.timeout_seconds, "Per-request timeout in seconds")
        ->check(CLI::PositiveNumber);
  }
  void json(CLI::App* c, const char* help) const { c->add_flag("--json", f_.json, help); }
  void logging(CLI::App* c) const {
    c->add_flag("--verbose", f_.verbose, "Debug logging");
    c->add_option("--log-file", f_.log_file, "Also append log lines to this file");
  }

 private:
  Flags& f_;
};

CLI::Range range(Bounds b) {
  return CLI::Range(b.min, b.max);
}

struct Commands {
  CLI::App *init, *run, *status, *batches, *failures, *verify, *search, *tokens, *config, *doctor, *version,
      *man, *completion;
};

// "lens-embed 0.1.0": --version and `lens-embed version`.
std::string version_text() {
  return fmt::format("lens-embed {}", LENS_VERSION);
}

// The documented commands of `app`, in order (hidden ones, with an empty group, left out).
std::vector<std::string> command_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const auto* c : app.get_subcommands([](const CLI::App* c) { return !c->get_group().empty(); }))
    names.push_back(c->get_name());
  return names;
}

// `lens-embed WORD ...` where WORD is no command: says so, suggests the nearest, lists them.
std::optional<std::string> unknown_command(const CLI::App& app, int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return std::nullopt;
  const std::string word = argv[1];
  for (const auto* c : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (c->get_name() == word) return std::nullopt;
  }
  const auto names = command_names(app);
  const std::string near = nearest(word, names);
  // A suggestion only when it is close: "stauts" → status, not "x" → init.
  const bool close = !near.empty() && util::edit_distance(word, near) <= 2;
  return fmt::format("unknown command \"{}\"{}; the commands are: {} (lens-embed --help)", word,
                     close ? fmt::format(" (did you mean \"{}\"?)", near) : "", fmt::join(names, ", "));
}

Commands define_commands(CLI::App& app, Flags& f) {
  const SharedFlags shared(f);
  Commands c{};

  c.init = app.add_subcommand("init", "Create or upgrade the output tables and indexes (idempotent)");
  shared.db(c.init);
  shared.config(c.init);
  c.init->add_option("--index", f.index, "PostgreSQL with pgvector: also build an index (hnsw)")
      ->check(CLI::IsMember({"hnsw"}));
  c.init->add_flag("--create", f.create, "SQLite: create the database file when it does not exist");
  c.init->add_flag("--source-indexes", f.source_indexes,
                   "Also create the indexes the pending query needs on the source table (without it, "
                   "init prints the statements of those missing)");
  auto* track = c.init->add_flag(
      "--track-changes", f.track_changes,
      "PostgreSQL: install statement triggers on the source table that queue the keys of changed rows, "
      "so that a run without [source] updated_at hashes only what changed");
  c.init
      ->add_flag("--untrack-changes", f.untrack_changes,
                 "PostgreSQL: remove the triggers and the queue of --track-changes")
      ->excludes(track);
  shared.provider(c.init, "With pgvector: size the vector column for this provider's model");
  shared.model(c.init, "With pgvector: size the vector column for this model");
  shared.dimensions(c.init, "With pgvector: size of the vector column");
  c.init->footer(
      "Examples:\n  lens-embed init --db postgresql://lens@localhost/lens\n  lens-embed init --create --db "
      "sqlite:lens.db\n  lens-embed init --source-indexes\n  lens-embed init --track-changes");

  auto* run = c.run = app.add_subcommand("run", "Embed every exchange that has no up-to-date embedding");
  shared.db(run);
  shared.config(run);
  shared.provider_group(run);
  run->add_option(
         "--batch-size", f.batch_size,
         fmt::format("Maximum inputs per request ({}..{})", k_batch_size_bounds.min, k_batch_size_bounds.max))
      ->check(range(k_batch_size_bounds));
  run->add_option("--limit", f.limit, "Embed at most N exchanges in this run")->check(CLI::NonNegativeNumber);
  run->add_flag("--force", f.force, "Re-embed exchanges that already have a row (updated in place)");
  run->add_flag("--rehash", f.rehash,
                "Re-read and hash every eligible input; re-embed only those whose hash differs (the "
                "default when [source] updated_at is \"\")");
  run->add_option("--concurrency", f.concurrency, "Maximum requests in flight")
      ->check(range(k_concurrency_bounds));
  run->add_option("--rpm", f.rpm, "Requests per minute allowed by the provider (0 = no limit)")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--tpm", f.tpm, "Tokens per minute allowed by the provider (0 = no limit)")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--max-attempts", f.max_attempts,
                  "Attempts per request before its inputs are recorded as failures (an outage does not "
                  "count)")
      ->check(range(k_max_attempts_bounds));
  run->add_option("--unavailable-after", f.unavailable_after,
                  "Seconds without an answer (and 3 failed requests in a row) after which the provider "
                  "counts as unavailable: the run stops (exit 1), or with --follow waits (default 30)")
      ->check(range(k_unavailable_after_bounds));
  run->add_option("--sweep-every", f.sweep_every,
                  "With --follow and change tracking (init --track-changes): seconds between passes over "
                  "every message; the passes between read only what changed (default 900)")
      ->check(range(k_sweep_every_bounds));
  run->add_option("--metrics-addr,--metrics-listen", f.metrics_addr,
                  "Serve Prometheus metrics (/metrics) and health (/healthz) on [HOST:]PORT; a port alone "
                  "listens on 127.0.0.1 (default: off)");
  run->add_flag("--no-wait", f.no_wait,
                "SQLite: exit 1 at once when another run holds the database, instead of waiting");
  run->add_option("--long-input", f.long_input,
                  "Inputs over the model's token limit: truncate (default) or chunk")
      ->check(CLI::IsMember({"truncate", "chunk"}));
  run->add_option("--encoding-format", f.encoding_format, "base64 (default) or float")
      ->check(CLI::IsMember({"base64", "float"}));
  run->add_flag("--dry-run", f.dry_run,
                "Print what would be embedded, its tokens and cost; call no provider");
  run->add_flag("--follow", f.follow, "Keep running: embed new and edited messages as they arrive");
  run->add_flag("--batch-api", f.batch_api,
                "Backfill through the provider's Batch API (half the price, results within 24 h; rerun to "
                "collect them; also [providers.NAME] batch = true)");
  run->add_option("--batch-queue-tokens", f.batch_queue_tokens,
                  "--batch-api: tokens enqueued at once at most (default 3000000, OpenAI tier 1)")
      ->check(CLI::PositiveNumber);
  run->add_flag("--quiet", f.quiet, "No progress output (the final summary is still printed)");
  run->add_option("--log-format", f.log_format, "Progress lines when not on a terminal: logfmt or json")
      ->check(CLI::IsMember({"logfmt", "json"}));
  shared.json(run, "Print the final summary as one JSON object on stdout");
  run->footer(std::string("Examples:\n  lens-embed run\n  lens-embed run --provider supermind --model "
                          "text-embedding-3-large --limit 1000\n  lens-embed run --dry-run\n\n") +
              k_exit_status_table);

  c.status = app.add_subcommand(
      "status",
      "Embedded, pending, stale and failed counts of every provider and model, the oldest pending message, "
      "tokens and USD of the last 24 hours, the last failed run, live workers (PostgreSQL) and recent runs");
  shared.db(c.status);
  shared.config(c.status);
  shared.provider(c.status, "Only this provider's models (default: every one in the database)");
  shared.model(c.status, "Only this model (default: every one in the database)");
  shared.json(c.status, "Print as JSON");

  c.batches = app.add_subcommand(
      "batches", "Batch API batches (run --batch-api): status, progress, age, tokens and cost; cancel them");
  shared.db(c.batches);
  shared.config(c.batches);
  shared.provider_group(c.batches);
  c.batches->add_option("--cancel", f.cancel_batch,
                        "Cancel this unfinished batch (its key or the provider's id)");
  c.batches->add_flag("--cancel-all", f.cancel_all,
                      "Cancel every unfinished batch (of the provider/model named)");
  shared.json(c.batches, "Print as JSON");
  c.batches->footer(
      "Examples:\n  lens-embed batches\n  lens-embed batches --cancel lensb-0123456789abcdef\n"
      "  lens-embed batches --cancel-all");

  c.failures = app.add_subcommand("failures", "List inputs that failed, with the provider's reasons");
  shared.db(c.failures);
  shared.config(c.failures);
  shared.provider_group(c.failures);
  c.failures->add_flag("--retry", f.retry,
                       "Embed exactly the recorded failures again (of every provider and model, or the "
                       "one named), each with the provider and model it failed under; nothing else");
  shared.json(c.failures, "Print as JSON");
  c.failures->footer(
      "--provider and --model filter (default: every provider and model in the database).\n"
      "Examples:\n  lens-embed failures\n  lens-embed failures --retry\n"
      "  lens-embed failures --retry --provider supermind --model text-embedding-3-large");

  c.verify = app.add_subcommand(
      "verify", "Check the stored embeddings against the messages as they are now (read-only)");
  shared.db(c.verify);
  shared.config(c.verify);
  shared.provider_group(c.verify);
  c.verify
      ->add_option("--sample", f.sample,
                   "Also embed N random stored inputs again and compare them with the stored vectors "
                   "(1..1000; one provider request each; their texts are held in memory)")
      ->check(CLI::Range(1, 1000));
  shared.json(c.verify, "Print the report as one JSON object");
  c.verify->footer(
      "Checks the provider and model `run` would use (same flags and configuration): rows whose input\n"
      "text changed (stale), rows and failures of messages that are gone or filtered out (orphans),\n"
      "eligible exchanges with neither a row nor a failure (missing), rows of the wrong size, and with\n"
      "--sample vectors that no longer match a fresh embedding (cosine < 0.999). Each finding names\n"
      "the rows and the command that repairs them. Exit 0: clean; 1: something was found; 2: usage or\n"
      "configuration.\n"
      "Examples:\n  lens-embed verify\n  lens-embed verify --sample 20 --json");

  c.search = app.add_subcommand("search", "Find the exchanges closest to QUERY (cosine similarity)");
  shared.db(c.search);
  shared.config(c.search);
  shared.provider_group(c.search);
  c.search->add_option("-k", f.k, "How many results (default 10)")->check(CLI::Range(1, 10000));
  c.search->add_option("QUERY", f.query, "Text to search for")->required();
  shared.json(c.search, "Print as JSON");
  c.search->footer(
      "Without --provider/--model: the only provider and model with embeddings in the database\n"
      "(with several, it lists them and asks).\n"
      "Example:\n  lens-embed search -k 5 \"how do plants make food\"");

  c.tokens = app.add_subcommand("tokens", "Count the tokens of FILE (or stdin) with the model's tokenizer");
  shared.model(c.tokens, "Model whose tokenizer to use (default per provider)");
  shared.config(c.tokens, "Config file");
  c.tokens->add_flag("--ids", f.ids, "Also print the token ids");
  c.tokens->add_option("FILE", f.file, "File to read, or - for stdin");
  shared.json(c.tokens, "Print as JSON");

  c.config = app.add_subcommand("config", "Print the effective configuration and where each value came from");
  shared.db(c.config);
  shared.config(c.config);
  shared.provider_group(c.config);
  shared.json(c.config, "Print as JSON");

  c.doctor = app.add_subcommand(
      "doctor",
      "Check what the database needs for the [source] mapping (read-only), with a fix for each gap");
  shared.db(c.doctor);
  shared.config(c.doctor);
  shared.provider(c.doctor, "The pair whose pending page and input definition are checked");
  shared.model(c.doctor, "The pair whose pending page and input definition are checked");
  c.doctor->footer(
      "Exit status: 0 everything the mapping needs is there; 1 a recommendation is not met (each printed "
      "with its fix); 2 a configuration error.\n\nExamples:\n  lens-embed doctor\n  lens-embed doctor --db "
      "postgresql://lens@localhost/lens --config lens-embed.toml");

  c.version = app.add_subcommand("version", "Print the version");

  for (auto* cmd : {c.init, c.run, c.status, c.failures, c.verify, c.search, c.tokens, c.config, c.doctor})
    shared.logging(cmd);
  // Generated documentation (hidden: empty group).
  c.man = app.add_subcommand("man", "Print the man page (roff)")->group("");
  c.completion = app.add_subcommand("completion", "Print the bash completion script")->group("");
  return c;
}

int dispatch(const Commands& c, const CLI::App& app, const Flags& f, const DotenvOrigins& dotenv) {
  if (c.man->parsed()) {
    std::fputs(man_page(app).c_str(), stdout);
    return k_exit_ok;
  }
  if (c.completion->parsed()) {
    std::fputs(bash_completion(app).c_str(), stdout);
    return k_exit_ok;
  }
  if (c.version->parsed()) {
    std::puts(version_text().c_str());
    return k_exit_ok;
  }
  const auto config = resolve_config(f, dotenv);
  if (!config) return report(config.error());
  if (c.init->parsed()) return cmd_init(f, *config);
  if (c.run->parsed()) return cmd_run(f, *config);
  if (c.status->parsed()) return cmd_status(f, *config);
  if (c.batches->parsed()) return cmd_batches(f, *config);
  if (c.failures->parsed()) return cmd_failures(f, *config, dotenv);
  if (c.verify->parsed()) return cmd_verify(f, *config);
  if (c.search->parsed()) return cmd_search(f, *config, dotenv);
  if (c.tokens->parsed()) return cmd_tokens(f, *config);
  if (c.config->parsed()) return cmd_config(f, *config);
  if (c.doctor->parsed()) return cmd_doctor(f, *config);
  return usage_error("no command given; try lens-embed --help");
}

}  // namespace

int run_cli(int argc, char** argv) {
  // Responses of 3072-d vectors are megabytes each: without this glibc maps and unmaps a
  // fresh region per response, and page faults dominated the profile (bench/RESULTS.md).
  // Memory stays bounded by the pipeline's queues either way.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  const auto dotenv = load_dotenv(".env");
  if (!dotenv) return report(dotenv.error());

  CLI::App app{
      "lens-embed: keeps vector embeddings of Lens chat messages in sync with their database.\n"
      "Each user message is embedded together with the assistant reply that answers it."};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every command");
  app.set_version_flag("--version", version_text());
  app.footer(k_exit_status_table);
  Flags f;
  const Commands commands = define_commands(app, f);
  if (auto unknown = unknown_command(app, argc, argv)) return usage_error(*unknown);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return k_exit_ok;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return k_exit_ok;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --version
    if (argc < 2) {
      return usage_error(
          fmt::format("a command is required: {} (lens-embed --help)", fmt::join(command_names(app), ", ")));
    }
    std::string which;
    for (auto* c : app.get_subcommands())
      which = c->get_name();
    return usage_error(
        fmt::format("{}\nRun 'lens-embed {}--help' for usage.", e.what(), which.empty() ? "" : which + " "));
  }
  if (f.verbose) util::set_log_level(util::LogLevel::debug);
  if (f.log_file) util::set_log_file(*f.log_file);

  try {
    return dispatch(commands, app, f, *dotenv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lens-embed: internal error: %s\n", util::redact(e.what()).c_str());
    return k_exit_stopped;
  }
}

}  // namespace lens::cli
