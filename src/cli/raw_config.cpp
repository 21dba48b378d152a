// Phase one: precedence and sources. Each setting is picked here from the first source that
// has it; nothing is parsed as a number until settings.cpp.
#include "cli/raw_config.h"

#include <fmt/core.h>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>

#include "cli/config_file.h"
#include "util/redact.h"

namespace lens::cli {
namespace {

using util::ErrorCode;

// The process environment, naming a variable's source as .env:LINE when .env set it.
class Environment {
 public:
  explicit Environment(const DotenvOrigins& dotenv) : dotenv_(dotenv) {}

  // An empty variable counts as unset.
  [[nodiscard]] std::optional<Sourced> get(const std::string& name) const {
    const char* v = std::getenv(name.c_str());
    if (!v || !*v) return std::nullopt;
    return Sourced{v, dotenv_.source_of(name).value_or("env " + name)};
  }

 private:
  const DotenvOrigins& dotenv_;
};

std::string upper(std::string s) {
  for (char& c : s)
    c = c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// The first of: the flag, the variables in order, the file's value, the default.
Sourced pick(const std::optional<std::string>& flag, std::string_view flag_name, const Environment& env,
             std::initializer_list<std::string> env_names, const Sourced& from_file, std::string fallback) {
  if (flag) return {*flag, fmt::format("flag --{}", flag_name)};
  for (const auto& name : env_names) {
    if (auto v = env.get(name)) return *v;
  }
  if (from_file.is_set()) return from_file;
  return {std::move(fallback), "default"};
}

// Numeric flags arrive typed by CLI11; phase two parses every source's text alike.
std::optional<std::string> text(const std::optional<long long>& v) {
  if (!v) return std::nullopt;
  return std::to_string(*v);
}

// The Lens compose setup's variables, when no URL is given.
std::optional<Sourced> compose_database(const Environment& env) {
  static const char* const names[] = {"POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USER", "POSTGRES_PASSWORD",
                                      "POSTGRES_DB"};
  static const char* const keys[] = {"host", "port", "user", "password", "dbname"};
  if (!env.get("POSTGRES_HOST") && !env.get("POSTGRES_DB")) return std::nullopt;
  std::string conninfo;
  std::string dotenv_lines;  // the variables .env supplied, if any
  for (std::size_t i = 0; i < std::size(names); ++i) {
    const auto v = env.get(names[i]);
    if (!v) continue;
    std::string escaped;
    for (char c : v->value) {
      if (c == '\'' || c == '\\') escaped.push_back('\\');
      escaped.push_back(c);
    }
    if (!conninfo.empty()) conninfo.push_back(' ');
    conninfo += fmt::format("{}='{}'", keys[i], escaped);
    if (!v->source.starts_with("env ")) dotenv_lines += fmt::format(", {} {}", names[i], v->source);
  }
  if (auto pw = env.get("POSTGRES_PASSWORD")) util::register_secret(pw->value);
  return Sourced{conninfo, "env POSTGRES_HOST/PORT/USER/PASSWORD/DB" + dotenv_lines};
}

// --config, then $LENS_CONFIG, then ./lens-embed.toml when it exists; empty when none.
util::Result<Sourced> config_file_path(const Flags& flags, const Environment& env) {
  if (flags.config_path) {
    if (!std::filesystem::exists(*flags.config_path)) {
      return util::fail(
          ErrorCode::invalid_argument,
          fmt::format("--config {}: no such file; create it or drop the flag", *flags.config_path));
    }
    return Sourced{*flags.config_path, "flag --config"};
  }
  if (auto p = env.get("LENS_CONFIG")) return *p;
  if (std::filesystem::exists("lens-embed.toml")) return Sourced{"lens-embed.toml", "search"};
  return Sourced{"", "search"};
}

// The provider's section: configured, or built in. Fails for an unknown provider or kind.
util::Result<ProviderSection> provider_section(const std::string& name, const FileValues& file,
                                               const Environment& env, const Flags& flags) {
  ProviderSection p;
  const auto configured = file.providers.find(name);
  if (configured != file.providers.end()) p = configured->second;
  p.name = name;
  if (!p.kind.is_set()) p.kind = {name == "local-hash" ? "local-hash" : "openai", "built in"};
  if (p.kind.value != "local-hash" && p.kind.value != "openai") {
    return util::fail(ErrorCode::invalid_argument,
                      fmt::format("provider {}: kind must be \"openai\" or \"local-hash\", not \"{}\" ({})",
                                  name, p.kind.value, p.kind.source));
  }
  if (p.kind.value == "openai" && name != "openai" && name != "supermind" &&
      configured == file.providers.end()) {
    return util::fail(ErrorCode::invalid_argument,
                      fmt::format("--provider {}: unknown provider; use local-hash, supermind, openai, "
                                  "or add [providers.{}] to lens-embed.toml",
                                  name, name));
  }
  const std::string prefix = upper(name);
  Sourced default_base = p.base_url;
  if (!default_base.is_set() && name == "openai") default_base = {"https://api.openai.com/v1", "default"};
  p.base_url = pick(flags.base_url, "base-url", env, {prefix + "_BASE_URL"}, default_base, "");
  if (!p.api_key_env.is_set()) p.api_key_env = {prefix + "_API_KEY", "default"};
  p.ca_cert = pick(flags.ca_cert, "ca-cert", env, {prefix + "_CA_CERT"}, p.ca_cert, "");
  return p;
}

}  // namespace

util::Result<RawConfig> resolve_config(const Flags& flags, const DotenvOrigins& dotenv) {
  const Environment env(dotenv);
  RawConfig c;
  auto path = config_file_path(flags, env);
  if (!path) return std::unexpected(path.error());
  c.config_file = *path;
  FileValues file;
  if (c.config_file.is_set()) {
    auto values = read_config_file(c.config_file.value);
    if (!values) return std::unexpected(values.error());
    file = std::move(*values);
  }
  c.models = file.models;
  c.mapping = file.mapping;

  c.database = pick(flags.db, "db", env, {"LENS_DATABASE_URL", "DATABASE_URL"}, file.database, "");
  if (!c.database.is_set()) c.database = compose_database(env).value_or(Sourced{"sqlite:lens.db", "default"});
  c.provider = pick(flags.provider, "provider", env, {"LENS_PROVIDER"}, file.provider, "");
  if (!c.provider.is_set()) {
    // SUPERMIND_* is the Lens deployment's own provider configuration (its .env): where
    // it is set, a run without a named provider means that one, not a second, lexical
    // embedding of the whole corpus beside it. OPENAI_API_KEY is not taken as a choice:
    // other tools set it, and it would send the messages to a third party unasked.
    if (auto url = env.get("SUPERMIND_BASE_URL"))
      c.provider = {"supermind", fmt::format("default, as SUPERMIND_BASE_URL is set ({})", url->source)};
    else
      c.provider = {"local-hash", "default"};
  }

  auto section = provider_section(c.provider.value, file, env, flags);
  if (!section) return std::unexpected(section.error());
  c.provider_section = std::move(*section);
  const ProviderSection& p = c.provider_section;
  const std::string& name = p.name;
  const std::string prefix = upper(name);
  const bool remote = p.kind.value == "openai";

  const std::string default_model = !remote            ? "local-hash-v1"
                                    : name == "openai" ? "text-embedding-3-small"
                                                       : "text-embedding-3-large";
  c.model =
      pick(flags.model, "model", env, {"LENS_MODEL"}, p.model.is_set() ? p.model : file.model, default_model);

  if (auto key = env.get(p.api_key_env.value)) {
    c.api_key = *key;
    util::register_secret(key->value);
  }

  c.batch_size = pick(text(flags.batch_size), "batch-size", env, {"LENS_BATCH_SIZE"},
                      p.max_batch.is_set() ? p.max_batch : file.batch_size, remote ? "256" : "512");
  c.concurrency = pick(text(flags.concurrency), "concurrency", env, {"LENS_CONCURRENCY"}, file.concurrency,
                       remote ? "16" : "1");
  // Tier-1 limits of text-embedding-3-large as a safe default for remote providers; the
  // provider's x-ratelimit-* headers then correct the buckets downward when needed.
  c.rpm = pick(text(flags.rpm), "rpm", env, {prefix + "_RPM", "LENS_RPM"}, p.rpm, remote ? "3000" : "0");
  c.tpm = pick(text(flags.tpm), "tpm", env, {prefix + "_TPM", "LENS_TPM"}, p.tpm, remote ? "1000000" : "0");
  c.max_attempts =
      pick(text(flags.max_attempts), "max-attempts", env, {"LENS_MAX_ATTEMPTS"}, file.max_attempts, "6");
  c.dimensions = pick(text(flags.dimensions), "dimensions", env, {"LENS_DIMENSIONS"}, file.dimensions, "");
  c.long_input = pick(flags.long_input, "long-input", env, {"LENS_LONG_INPUT"}, file.long_input, "truncate");
  c.encoding_format = pick(flags.encoding_format, "encoding-format", env, {"LENS_ENCODING_FORMAT"},
                           file.encoding_format, "base64");
  c.timeout_seconds = pick(text(flags.timeout_seconds), "timeout", env, {"LENS_TIMEOUT_SECONDS"},
                           file.timeout_seconds, "120");
  c.unavailable_after = pick(text(flags.unavailable_after), "unavailable-after", env,
                             {"LENS_UNAVAILABLE_AFTER"}, file.unavailable_after, "30");
  c.sweep_every =
      pick(text(flags.sweep_every), "sweep-every", env, {"LENS_SWEEP_EVERY"}, file.sweep_every, "900");
  c.metrics_addr =
      pick(flags.metrics_addr, "metrics-addr", env, {"LENS_METRICS_ADDR"}, file.metrics_addr, "");
  c.insecure = pick(flags.insecure ? std::optional<std::string>("true") : std::nullopt, "insecure", env,
                    {"LENS_INSECURE"}, {}, "false");

  // Registered early: whatever error or log line follows can never show it.
  if (auto pw = env.get("PGPASSWORD")) util::register_secret(pw->value);
  return c;
}

std::string mask_database_url(const std::string& url) {
  return util::redact(url);
}

std::vector<std::pair<std::string, Sourced>> describe(const RawConfig& c) {
  const ProviderSection& p = c.provider_section;
  std::vector<std::pair<std::string, Sourced>> out;
  out.emplace_back("database", Sourced{mask_database_url(c.database.value), c.database.source});
  out.emplace_back("provider", c.provider);
  out.emplace_back("provider.kind", p.kind);
  out.emplace_back("provider.base_url", p.base_url);
  out.emplace_back("provider.api_key_env", p.api_key_env);
  out.emplace_back("provider.ca_cert",
                   p.ca_cert.is_set() ? p.ca_cert : Sourced{"(system)", p.ca_cert.source});
  out.emplace_back("provider.api_key",
                   c.api_key.is_set() ? Sourced{"***", c.api_key.source} : Sourced{"(not set)", "default"});
  out.emplace_back("model", c.model);
  out.emplace_back("batch_size", c.batch_size);
  out.emplace_back("concurrency", c.concurrency);
  out.emplace_back("rpm", c.rpm);
  out.emplace_back("tpm", c.tpm);
  out.emplace_back("max_attempts", c.max_attempts);
  out.emplace_back("dimensions",
                   c.dimensions.is_set() ? c.dimensions : Sourced{"(model default)", "default"});
  out.emplace_back("long_input", c.long_input);
  out.emplace_back("encoding_format", c.encoding_format);
  out.emplace_back("timeout_seconds", c.timeout_seconds);
  out.emplace_back("unavailable_after", c.unavailable_after);
  out.emplace_back("sweep_every", c.sweep_every);
  out.emplace_back("metrics_addr", c.metrics_addr.is_set() ? c.metrics_addr : Sourced{"(off)", "default"});
  out.emplace_back("insecure", c.insecure);
  for (auto& line : core::describe_entries(c.mapping))
    out.emplace_back(std::move(line.key), Sourced{std::move(line.value), std::move(line.source)});
  out.emplace_back("config_file",
                   c.config_file.is_set() ? c.config_file : Sourced{"(none)", c.config_file.source});
  return out;
}

}  // namespace lens::cli
