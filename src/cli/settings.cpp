// Phase two: every number parsed here, once, against the same bounds as its flag.
#include "cli/settings.h"

#include <fmt/core.h>
#include <cctype>
#include <charconv>
#include <limits>

namespace lens::cli {
namespace {

using util::ErrorCode;

constexpr long long k_no_max = std::numeric_limits<long long>::max();

util::Error wrong(std::string_view flag, const Sourced& s, std::string_view rule) {
  return {ErrorCode::invalid_argument, fmt::format("{} {} (from {}): {}", flag, s.value, s.source, rule)};
}

util::Result<long long> whole(const Sourced& s, std::string_view flag, Bounds bounds) {
  const auto v = parse_whole_number(s.value);
  if (!v) {
    return util::fail(ErrorCode::invalid_argument,
                      fmt::format("{}: \"{}\" from {} is not a whole number", flag, s.value, s.source));
  }
  if (*v < bounds.min || *v > bounds.max) {
    return std::unexpected(wrong(flag, s,
                                 bounds.max == k_no_max
                                     ? fmt::format("must be at least {}", bounds.min)
                                     : fmt::format("must be {}..{}", bounds.min, bounds.max)));
  }
  return *v;
}

core::ModelSpec model_spec(const RawConfig& raw) {
  core::ModelSpec spec = core::model_or_default(raw.model.value);
  if (auto it = raw.models.find(raw.model.value); it != raw.models.end()) {
    const auto& o = it->second;
    if (o.encoding) spec.encoding = *o.encoding;
    if (o.max_input_tokens) spec.max_input_tokens = static_cast<int>(*o.max_input_tokens);
    if (o.dimensions) spec.default_dimensions = static_cast<int>(*o.dimensions);
    if (o.usd_per_million_tokens) spec.usd_per_million_tokens = *o.usd_per_million_tokens;
  }
  return spec;
}

util::Result<ProviderSettings> provider_settings(const RawConfig& raw) {
  const ProviderSection& section = raw.provider_section;
  ProviderSettings p;
  p.name = section.name;
  p.kind = section.kind.value == "local-hash" ? ProviderKind::local_hash : ProviderKind::openai;
  p.base_url = section.base_url.value;
  p.api_key_env = section.api_key_env.value;
  p.api_key = raw.api_key.value;
  const auto concurrency = whole(raw.concurrency, "--concurrency", k_concurrency_bounds);
  if (!concurrency) return std::unexpected(concurrency.error());
  p.concurrency = static_cast<int>(*concurrency);
  if (raw.dimensions.is_set()) {
    const auto dims = whole(raw.dimensions, "--dimensions", {1, std::numeric_limits<int>::max()});
    if (!dims) return std::unexpected(dims.error());
    p.dimensions = static_cast<int>(*dims);
  }
  const auto timeout = whole(raw.timeout_seconds, "--timeout", {1, k_no_max});
  if (!timeout) return std::unexpected(timeout.error());
  p.timeout = std::chrono::seconds(*timeout);
  if (raw.encoding_format.value != "base64" && raw.encoding_format.value != "float") {
    return std::unexpected(wrong("--encoding-format", raw.encoding_format, "use base64 or float"));
  }
  p.encoding_format = raw.encoding_format.value;
  // Anything but an explicit yes keeps TLS verified.
  p.verify_tls = raw.insecure.value != "true" && raw.insecure.value != "1";
  p.ca_cert = section.ca_cert.value;
  return p;
}

util::Result<RunSettings> run_settings(const RawConfig& raw) {
  RunSettings r;
  const auto batch = whole(raw.batch_size, "--batch-size", k_batch_size_bounds);
  if (!batch) return std::unexpected(batch.error());
  r.batch_size = static_cast<std::size_t>(*batch);
  // Requests and tokens per minute; 0 means no limit.
  const auto rpm = whole(raw.rpm, "--rpm", {0, k_no_max});
  if (!rpm) return std::unexpected(rpm.error());
  const auto tpm = whole(raw.tpm, "--tpm", {0, k_no_max});
  if (!tpm) return std::unexpected(tpm.error());
  r.rate = {static_cast<double>(*rpm), static_cast<double>(*tpm)};
  const auto attempts = whole(raw.max_attempts, "--max-attempts", k_max_attempts_bounds);
  if (!attempts) return std::unexpected(attempts.error());
  r.max_attempts = static_cast<int>(*attempts);
  if (raw.long_input.value == "chunk")
    r.long_input = pipeline::LongInput::chunk;
  else if (raw.long_input.value != "truncate")
    return std::unexpected(wrong("--long-input", raw.long_input, "use truncate or chunk"));
  return r;
}

// Until the stores build their SQL from the mapping (issue 12, store side), a mapped schema
// would be ignored and the default tables read instead: refuse it rather than embed the
// wrong rows. Removed together with the stores' change.
util::Status refuse_mapped_schema(const core::SourceMapping& mapping) {
  if (mapping.is_default()) return {};
  const auto defaults = core::SourceMapping().describe();
  const auto lines = mapping.describe();
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].value == defaults[i].value) continue;
    return util::fail(ErrorCode::configuration,
                      fmt::format("{}: {} = {}: this version of lens-embed reads only the default schema "
                                  "(messages with id, conversation_id, role, content, created_at, "
                                  "updated_at); remove [source]/[output] from the file",
                                  lines[i].source, lines[i].key, lines[i].value));
  }
  return {};
}

}  // namespace

std::optional<long long> parse_whole_number(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  // from_chars takes a '-' but no '+'.
  if (s.starts_with('+')) {
    s.remove_prefix(1);
    if (s.starts_with('-')) return std::nullopt;
  }
  long long v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

util::Result<Settings> make_settings(const RawConfig& raw, Uses uses) {
  Settings s;
  s.database = raw.database.value;
  s.provider = raw.provider.value;
  s.model = raw.model.value;
  s.model_spec = model_spec(raw);
  auto mapping = core::make_source_mapping(raw.mapping);
  if (!mapping) return std::unexpected(mapping.error());
  s.mapping = std::move(*mapping);
  if (auto supported = refuse_mapped_schema(s.mapping); !supported) return std::unexpected(supported.error());
  if (uses.run) {
    auto run = run_settings(raw);
    if (!run) return std::unexpected(run.error());
    s.run = *run;
  }
  if (uses.provider) {
    auto provider = provider_settings(raw);
    if (!provider) return std::unexpected(provider.error());
    s.provider_settings = std::move(*provider);
  }
  return s;
}

}  // namespace lens::cli
