// Command-line front end: flags are defined once here with their help text (phase one,
// raw values), turned into a Config and backends (phase two), then a command runs.
#include "cli/app.h"

#include <fmt/core.h>
#include <malloc.h>
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/backends.h"
#include "cli/config.h"
#include "cli/dotenv.h"
#include "cli/output.h"
#include "core/model_table.h"
#include "pipeline/embed_one.h"
#include "pipeline/pipeline.h"
#include "tokenizer/tokenizer.h"
#include "util/log.h"
#include "util/redact.h"

namespace lens::cli {
namespace {

constexpr int k_exit_ok = 0;
constexpr int k_exit_stopped = 1;
constexpr int k_exit_usage = 2;

pipeline::StopFlag g_stop{0};

extern "C" void on_signal(int) {
  // Second signal: leave at once. Everything committed is already durable.
  if (g_stop.fetch_add(1) >= 1) _exit(k_exit_stopped);
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "lens-embed: %s\n", util::redact(message).c_str());
  return k_exit_usage;
}

bool is_users_to_fix(util::ErrorCode code) {
  return code == util::ErrorCode::invalid_argument || code == util::ErrorCode::configuration;
}

// Usage and configuration errors are the user's to fix (exit 2); anything else stopped the
// command (1).
int report(const util::Error& e) {
  std::fprintf(stderr, "lens-embed: %s\n", util::redact(e.message).c_str());
  return is_users_to_fix(e.code) ? k_exit_usage : k_exit_stopped;
}

std::string worker_id() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return fmt::format("{}:{}", host, getpid());
}

// The spec of the configured model, with [models."name"] overrides applied.
core::ModelSpec model_spec(const Config& config) {
  core::ModelSpec spec = core::model_or_default(config.model.value);
  if (auto it = config.models.find(config.model.value); it != config.models.end()) {
    const auto& o = it->second;
    if (o.encoding) spec.encoding = *o.encoding;
    if (o.max_input_tokens) spec.max_input_tokens = static_cast<int>(*o.max_input_tokens);
    if (o.dimensions) spec.default_dimensions = static_cast<int>(*o.dimensions);
    if (o.usd_per_million_tokens) spec.usd_per_million_tokens = *o.usd_per_million_tokens;
  }
  return spec;
}

long long as_number(const Sourced& s, const char* what) {
  try {
    std::size_t used = 0;
    const long long v = std::stoll(s.value, &used);
    if (used == s.value.size()) return v;
  } catch (...) {
  }
  throw CLI::ValidationError(what, fmt::format("\"{}\" from {} is not a whole number", s.value, s.source));
}

struct Opened {
  Config config;
  DatabaseTarget target;
  std::unique_ptr<store::Store> store;
};

util::Result<Opened> open_configured(const Flags& flags, const StoreOptions& store_options, bool migrate) {
  Opened o;
  auto config = resolve_config(flags);
  if (!config) return std::unexpected(config.error());
  o.config = std::move(*config);
  auto target = parse_database_url(o.config.database.value);
  if (!target) return std::unexpected(target.error());
  o.target = *target;
  auto store = open_store(o.target, store_options);
  if (!store) return std::unexpected(store.error());
  o.store = std::move(*store);
  if (migrate) {
    if (auto s = o.store->migrate(); !s) return std::unexpected(s.error());
  }
  return o;
}

util::Result<std::shared_ptr<const tokenizer::Tokenizer>> load_tokenizer(const core::ModelSpec& spec) {
  auto encoding = tokenizer::parse_encoding(spec.encoding);
  if (!encoding) {
    return util::fail(util::ErrorCode::invalid_argument,
                      fmt::format("model {}: {}", spec.name, encoding.error().message));
  }
  return tokenizer::Tokenizer::load(*encoding);
}

std::string arguments_json(const Config& c, const Flags& f) {
  nlohmann::json j{{"database", mask_database_url(c.database.value)},
                   {"provider", c.provider.value},
                   {"model", c.model.value},
                   {"batch_size", c.batch_size.value},
                   {"concurrency", c.concurrency.value},
                   {"rpm", c.rpm.value},
                   {"tpm", c.tpm.value},
                   {"force", f.force},
                   {"dry_run", f.dry_run},
                   {"follow", f.follow},
                   {"long_input", c.long_input.value}};
  if (f.limit) j["limit"] = *f.limit;
  if (c.dimensions.is_set()) j["dimensions"] = c.dimensions.value;
  if (c.provider_config.base_url.is_set()) j["base_url"] = util::redact(c.provider_config.base_url.value);
  return util::redact(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

// ------------------------------------------------------------------ commands

int cmd_init(const Flags& flags) {
  StoreOptions so;
  so.hnsw_index = flags.index.has_value();
  // pgvector columns have a fixed size: only when the user names the model (or the size)
  // does init make one; otherwise real[] (PostgreSQL) or BLOB (SQLite).
  if (flags.dimensions)
    so.vector_dimensions = static_cast<int>(*flags.dimensions);
  else if (flags.model || flags.provider) {
    auto config = resolve_config(flags);
    if (!config) return report(config.error());
    so.vector_dimensions = model_spec(*config).default_dimensions;
  }
  auto opened = open_configured(flags, so, true);
  if (!opened) return report(opened.error());
  std::printf("initialized %s\n", mask_database_url(opened->config.database.value).c_str());
  return k_exit_ok;
}

int cmd_run(const Flags& flags, bool retry_failures) {
  StoreOptions so;
  so.worker_id = worker_id();
  so.claims = true;
  // The model's size must be known before migrate() (a new pgvector column is sized by it).
  {
    auto resolved = resolve_config(flags);
    if (!resolved) return report(resolved.error());
    so.vector_dimensions =
        flags.dimensions ? static_cast<int>(*flags.dimensions) : model_spec(*resolved).default_dimensions;
  }
  auto opened = open_configured(flags, so, true);
  if (!opened) return report(opened.error());
  Config& config = opened->config;
  auto writer = open_store(opened->target, so);
  if (!writer) return report(writer.error());

  pipeline::RunOptions options;
  try {
    options.model = model_spec(config);
    options.batch_size = static_cast<std::size_t>(as_number(config.batch_size, "--batch-size"));
    options.max_concurrency = static_cast<int>(as_number(config.concurrency, "--concurrency"));
    options.rate.requests_per_minute = static_cast<double>(as_number(config.rpm, "--rpm"));
    options.rate.tokens_per_minute = static_cast<double>(as_number(config.tpm, "--tpm"));
    options.max_attempts = static_cast<int>(as_number(config.max_attempts, "--max-attempts"));
    if (config.dimensions.is_set()) {
      options.dimensions = static_cast<int>(as_number(config.dimensions, "--dimensions"));
    }
  } catch (const CLI::Error& e) {
    return usage_error(e.what());
  }
  if (options.batch_size < 1 || options.batch_size > 2048) {
    return usage_error(fmt::format("--batch-size {} (from {}): must be 1..2048", options.batch_size,
                                   config.batch_size.source));
  }
  if (options.max_concurrency < 1) return usage_error("--concurrency: must be at least 1");
  if (options.dimensions && *options.dimensions < 1) return usage_error("--dimensions: must be positive");
  if (config.long_input.value == "chunk")
    options.long_input = pipeline::LongInput::chunk;
  else if (config.long_input.value != "truncate") {
    return usage_error(fmt::format("--long-input {}: use truncate or chunk", config.long_input.value));
  }
  options.scope = {config.provider.value, config.model.value, flags.force, retry_failures};
  options.limit = flags.limit;
  options.dry_run = flags.dry_run;

  auto tok = load_tokenizer(options.model);
  if (!tok) return report(tok.error());
  const int default_dims = options.dimensions.value_or(options.model.default_dimensions);
  auto provider = make_provider(config, default_dims);
  if (!provider) return report(provider.error());

  ProgressStyle style;
  style.quiet = flags.quiet;
  style.tty = isatty(STDERR_FILENO) != 0;
  style.format = flags.log_format && *flags.log_format == "json" ? LogFormat::json : LogFormat::logfmt;
  options.progress_interval = style.tty ? std::chrono::milliseconds(250) : std::chrono::milliseconds(10'000);
  ProgressPrinter printer(style);

  install_signal_handlers();
  pipeline::RunDeps deps{
      *opened->store, **writer, **provider, **tok, &printer, &g_stop, arguments_json(config, flags),
      so.worker_id};
  const RunContext ctx{config.provider.value, config.model.value, mask_database_url(config.database.value)};
  int code = k_exit_ok;
  while (true) {
    auto outcome = pipeline::run_pipeline(options, deps);
    print_run_summary(outcome, ctx, flags.json);
    if (outcome.fatal) {
      code = is_users_to_fix(outcome.fatal->code) ? k_exit_usage : k_exit_stopped;
      break;
    }
    if (outcome.interrupted) {
      code = k_exit_stopped;
      break;
    }
    if (!flags.follow || flags.dry_run) break;
    // Follow: wait for a change notification (PostgreSQL LISTEN) or poll every 2 s, in
    // short slices so a signal is noticed at once.
    for (int i = 0; i < 20 && g_stop.load() == 0; ++i) {
      auto changed = opened->store->wait_for_changes(std::chrono::milliseconds(100));
      if (changed && *changed) break;
    }
    if (g_stop.load() > 0) break;
  }
  return code;
}

int cmd_status(const Flags& flags) {
  auto opened = open_configured(flags, {}, true);
  if (!opened) return report(opened.error());
  auto report_ = opened->store->status(10);
  if (!report_) return report(report_.error());
  print_status(*report_, flags.json);
  return k_exit_ok;
}

int cmd_failures(const Flags& flags) {
  if (flags.retry) return cmd_run(flags, true);
  auto opened = open_configured(flags, {}, true);
  if (!opened) return report(opened.error());
  auto list = opened->store->failures(flags.provider ? opened->config.provider.value : "",
                                      flags.model ? opened->config.model.value : "");
  if (!list) return report(list.error());
  print_failures(*list, flags.json);
  return k_exit_ok;
}

int cmd_search(const Flags& flags, const std::string& query) {
  if (query.empty()) return usage_error("search: give a QUERY, e.g. lens-embed search \"photosynthesis\"");
  auto opened = open_configured(flags, {}, true);
  if (!opened) return report(opened.error());
  Config& config = opened->config;
  const auto spec = model_spec(config);
  int dims = spec.default_dimensions;
  try {
    if (config.dimensions.is_set()) dims = static_cast<int>(as_number(config.dimensions, "--dimensions"));
  } catch (const CLI::Error& e) {
    return usage_error(e.what());
  }
  auto tok = load_tokenizer(spec);
  if (!tok) return report(tok.error());
  auto provider = make_provider(config, dims);
  if (!provider) return report(provider.error());
  auto vector = pipeline::embed_one(**provider, **tok, spec,
                                    config.dimensions.is_set() ? std::optional<int>(dims) : std::nullopt,
                                    query, std::chrono::seconds(60));
  if (!vector) return report(vector.error());
  const auto k = static_cast<std::size_t>(flags.k.value_or(10));
  auto hits = opened->store->search(config.provider.value, config.model.value, *vector, k);
  if (!hits) return report(hits.error());
  print_search(*hits, query, flags.json);
  return k_exit_ok;
}

int cmd_tokens(const Flags& flags, const std::string& file) {
  auto config = resolve_config(flags);
  if (!config) return report(config.error());
  const auto spec = model_spec(*config);
  auto tok = load_tokenizer(spec);
  if (!tok) return report(tok.error());
  std::string text;
  if (file.empty() || file == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream in(file, std::ios::binary);
    if (!in) return usage_error(fmt::format("tokens: cannot read {}", file));
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const auto ids = (*tok)->encode(text);
  if (flags.json) {
    nlohmann::json j{{"model", spec.name},
                     {"encoding", spec.encoding},
                     {"tokens", ids.size()},
                     {"max_input_tokens", spec.max_input_tokens}};
    if (flags.ids) j["ids"] = ids;
    std::printf("%s\n", j.dump().c_str());
    return k_exit_ok;
  }
  std::printf("%zu\n", ids.size());
  if (flags.ids) {
    std::string line;
    for (std::size_t i = 0; i < ids.size(); ++i)
      line += (i ? " " : "") + std::to_string(ids[i]);
    std::printf("%s\n", line.c_str());
  }
  return k_exit_ok;
}

int cmd_config(const Flags& flags) {
  auto config = resolve_config(flags);
  if (!config) return report(config.error());
  if (flags.json) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [key, v] : describe(*config))
      j[key] = {{"value", v.value}, {"source", v.source}};
    std::printf("%s\n", util::redact(j.dump()).c_str());
    return k_exit_ok;
  }
  for (const auto& [key, v] : describe(*config)) {
    std::printf("%s\n", util::redact(fmt::format("{:<20} = {:<40} ({})", key, v.value, v.source)).c_str());
  }
  return k_exit_ok;
}

// The man page and the bash completion are generated from the same CLI11 definitions as
// --help, so they cannot drift from the flags.
std::vector<const CLI::App*> commands_of(const CLI::App& app) {
  return app.get_subcommands([](const CLI::App* c) { return !c->get_group().empty(); });
}

std::string roff_escape(std::string text) {
  std::string out;
  for (char c : text) {
    if (c == '\\')
      out += "\\e";
    else if (c == '-')
      out += "\\-";
    else
      out.push_back(c);
  }
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out = "\\&" + out;
  return out;
}

std::string man_page(const CLI::App& app) {
  std::string m =
      ".TH LENS-EMBED 1 \"\" \"lens-embed\" \"User Commands\"\n.SH NAME\n"
      "lens\\-embed \\- keep vector embeddings of Lens chat messages in sync\n.SH SYNOPSIS\n"
      ".B lens\\-embed\n.I command\n[options]\n.SH DESCRIPTION\n" +
      roff_escape(app.get_description()) + "\n.SH COMMANDS\n";
  for (const CLI::App* c : commands_of(app)) {
    m += ".SS " + roff_escape(c->get_name()) + "\n" + roff_escape(c->get_description()) + "\n";
    for (const CLI::Option* o : c->get_options()) {
      if (o->get_name() == "--help" || o->get_name() == "--help-all") continue;
      m +=
          ".TP\n.B " + roff_escape(o->get_name(true, true)) + "\n" + roff_escape(o->get_description()) + "\n";
    }
    if (!c->get_footer().empty()) m += ".PP\n.nf\n" + roff_escape(c->get_footer()) + "\n.fi\n";
  }
  m += ".SH EXIT STATUS\n0 all eligible work done (recorded failures count as done); 1 stopped early "
       "(fatal error, interrupted); 2 usage or configuration error.\n"
       ".SH ENVIRONMENT\nLENS_DATABASE_URL, DATABASE_URL, POSTGRES_HOST/PORT/USER/PASSWORD/DB, "
       "<PROVIDER>_BASE_URL, <PROVIDER>_API_KEY, LENS_CONFIG; a .env file in the working directory is "
       "loaded at start and never overrides variables already set.\n.SH FILES\nlens\\-embed.toml, .env, "
       "lens.db\n";
  return m;
}

std::string bash_completion(const CLI::App& app) {
  std::string cases;
  std::string names;
  for (const CLI::App* c : commands_of(app)) {
    names += c->get_name() + " ";
    std::string flags;
    for (const CLI::Option* o : c->get_options()) {
      for (const auto& l : o->get_lnames())
        flags += "--" + l + " ";
      for (const auto& sname : o->get_snames())
        flags += "-" + sname + " ";
    }
    cases += fmt::format("    {}) opts=\"{}\" ;;\n", c->get_name(), flags);
  }
  return fmt::format(
      "# bash completion for lens-embed (generated by `lens-embed completion`)\n"
      "_lens_embed() {{\n"
      "  local cur=${{COMP_WORDS[COMP_CWORD]}} cmd=${{COMP_WORDS[1]}} opts\n"
      "  if [ \"$COMP_CWORD\" -eq 1 ]; then COMPREPLY=( $(compgen -W \"{}--help\" -- \"$cur\") ); return; "
      "fi\n"
      "  case \"$cmd\" in\n{}    *) opts=\"\" ;;\n  esac\n"
      "  COMPREPLY=( $(compgen -W \"$opts\" -- \"$cur\") )\n"
      "}}\ncomplete -o default -F _lens_embed lens-embed\n",
      names, cases);
}

}  // namespace

int run_cli(int argc, char** argv) {
  // Responses of 3072-d vectors are megabytes each: without this glibc maps and unmaps a
  // fresh region per response, and page faults dominated the profile (bench/RESULTS.md).
  // Memory stays bounded by the pipeline's queues either way.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  if (auto s = load_dotenv(".env"); !s) return usage_error(s.error().message);

  CLI::App app{
      "lens-embed: keeps vector embeddings of Lens chat messages in sync with their database.\n"
      "Each user message is embedded together with the assistant reply that answers it."};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every command");
  Flags f;
  std::string query, file;

  auto add_db = [&](CLI::App* c) {
    c->add_option("--db", f.db,
                  "Database: sqlite:PATH, postgresql://USER@HOST/DB or a libpq string "
                  "(env LENS_DATABASE_URL, DATABASE_URL; default sqlite:lens.db)");
    c->add_option("--config", f.config_path, "Config file (default ./lens-embed.toml)");
  };
  auto add_provider = [&](CLI::App* c) {
    c->add_option("--provider", f.provider,
                  "local-hash (offline, lexical), supermind, openai, or one from the config");
    c->add_option("--model", f.model, "Embedding model (default per provider, e.g. text-embedding-3-large)");
    c->add_option("--base-url", f.base_url,
                  "Provider base URL; POST {base-url}/embeddings (env <PROVIDER>_BASE_URL)");
    c->add_option("--dimensions", f.dimensions, "Output dimensions, for models that accept them")
        ->check(CLI::PositiveNumber);
    c->add_flag("--insecure", f.insecure, "Do not verify TLS certificates (prints a warning)");
    c->add_option("--timeout", f.timeout_seconds, "Per-request timeout in seconds")
        ->check(CLI::PositiveNumber);
  };
  auto add_json = [&](CLI::App* c, const char* what) { c->add_flag("--json", f.json, what); };

  auto* init = app.add_subcommand("init", "Create or upgrade the output tables and indexes (idempotent)");
  add_db(init);
  init->add_option("--index", f.index, "PostgreSQL with pgvector: also build an index (hnsw)")
      ->check(CLI::IsMember({"hnsw"}));
  init->add_option("--provider", f.provider,
                   "With pgvector: size the vector column for this provider's model");
  init->add_option("--model", f.model, "With pgvector: size the vector column for this model");
  init->add_option("--dimensions", f.dimensions, "With pgvector: size of the vector column")
      ->check(CLI::PositiveNumber);
  init->footer("Example:\n  lens-embed init --db postgresql://lens@localhost/lens");

  auto* run = app.add_subcommand("run", "Embed every exchange that has no up-to-date embedding");
  add_db(run);
  add_provider(run);
  run->add_option("--batch-size", f.batch_size, "Maximum inputs per request (1..2048)")
      ->check(CLI::Range(1, 2048));
  run->add_option("--limit", f.limit, "Embed at most N exchanges in this run")->check(CLI::NonNegativeNumber);
  run->add_flag("--force", f.force, "Re-embed exchanges that already have a row (updated in place)");
  run->add_option("--concurrency", f.concurrency, "Maximum requests in flight")->check(CLI::Range(1, 1024));
  run->add_option("--rpm", f.rpm, "Requests per minute allowed by the provider (0 = no limit)")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--tpm", f.tpm, "Tokens per minute allowed by the provider (0 = no limit)")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--max-attempts", f.max_attempts,
                  "Attempts per request before its inputs are recorded as failures")
      ->check(CLI::Range(1, 100));
  run->add_option("--long-input", f.long_input,
                  "Inputs over the model's token limit: truncate (default) or chunk")
      ->check(CLI::IsMember({"truncate", "chunk"}));
  run->add_option("--encoding-format", f.encoding_format, "base64 (default) or float")
      ->check(CLI::IsMember({"base64", "float"}));
  run->add_flag("--dry-run", f.dry_run,
                "Print what would be embedded, its tokens and cost; call no provider");
  run->add_flag("--follow", f.follow, "Keep running: embed new and edited messages as they arrive");
  run->add_flag("--quiet", f.quiet, "No progress output (the final summary is still printed)");
  run->add_option("--log-format", f.log_format, "Progress lines when not on a terminal: logfmt or json")
      ->check(CLI::IsMember({"logfmt", "json"}));
  add_json(run, "Print the final summary as one JSON object on stdout");
  run->footer(
      "Examples:\n  lens-embed run\n  lens-embed run --provider supermind --model text-embedding-3-large "
      "--limit 1000\n"
      "  lens-embed run --dry-run");

  auto* status = app.add_subcommand("status", "Embedded, pending, stale and failed counts, and recent runs");
  add_db(status);
  add_json(status, "Print as JSON");

  auto* failures = app.add_subcommand("failures", "List inputs that failed, with the provider's reasons");
  add_db(failures);
  add_provider(failures);
  failures->add_flag("--retry", f.retry, "Embed them again; those still failing stay, with attempts counted");
  add_json(failures, "Print as JSON");

  auto* search = app.add_subcommand("search", "Find the exchanges closest to QUERY (cosine similarity)");
  add_db(search);
  add_provider(search);
  search->add_option("-k", f.k, "How many results (default 10)")->check(CLI::Range(1, 10000));
  search->add_option("QUERY", query, "Text to search for")->required();
  add_json(search, "Print as JSON");
  search->footer("Example:\n  lens-embed search -k 5 \"how do plants make food\"");

  auto* tokens =
      app.add_subcommand("tokens", "Count the tokens of FILE (or stdin) with the model's tokenizer");
  tokens->add_option("--model", f.model, "Model whose tokenizer to use (default per provider)");
  tokens->add_option("--config", f.config_path, "Config file");
  tokens->add_flag("--ids", f.ids, "Also print the token ids");
  tokens->add_option("FILE", file, "File to read, or - for stdin");
  add_json(tokens, "Print as JSON");

  auto* config =
      app.add_subcommand("config", "Print the effective configuration and where each value came from");
  add_db(config);
  add_provider(config);
  add_json(config, "Print as JSON");

  for (auto* c : {init, run, status, failures, search, tokens, config}) {
    c->add_flag("--verbose", f.verbose, "Debug logging");
    c->add_option("--log-file", f.log_file, "Also append log lines to this file");
  }
  // Generated documentation (hidden: empty group).
  auto* man = app.add_subcommand("man", "Print the man page (roff)")->group("");
  auto* completion = app.add_subcommand("completion", "Print the bash completion script")->group("");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return k_exit_ok;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return k_exit_ok;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::string which;
    for (auto* c : app.get_subcommands())
      which = c->get_name();
    return usage_error(
        fmt::format("{}\nRun 'lens-embed {}--help' for usage.", e.what(), which.empty() ? "" : which + " "));
  }
  if (f.verbose) util::set_log_level(util::LogLevel::debug);
  if (f.log_file) util::set_log_file(*f.log_file);

  try {
    if (init->parsed()) return cmd_init(f);
    if (run->parsed()) return cmd_run(f, false);
    if (status->parsed()) return cmd_status(f);
    if (failures->parsed()) return cmd_failures(f);
    if (search->parsed()) return cmd_search(f, query);
    if (tokens->parsed()) return cmd_tokens(f, file);
    if (config->parsed()) return cmd_config(f);
    if (man->parsed()) {
      std::fputs(man_page(app).c_str(), stdout);
      return k_exit_ok;
    }
    if (completion->parsed()) {
      std::fputs(bash_completion(app).c_str(), stdout);
      return k_exit_ok;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lens-embed: internal error: %s\n", util::redact(e.what()).c_str());
    return k_exit_stopped;
  }
  return usage_error("no command given; try lens-embed --help");
}

}  // namespace lens::cli
