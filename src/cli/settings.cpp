// Phase two: every number parsed here, once, against the same bounds as its flag.
#include "cli/settings.h"

#include <fmt/core.h>
#include <cctype>
#include <charconv>
#include <limits>

#include "tokenizer/tokenizer.h"

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

// A decimal number in `s.value` (an integer is one too), at least 0.
util::Result<double> non_negative(const Sourced& s, std::string_view name) {
  double v = 0;
  const auto* end = s.value.data() + s.value.size();
  const auto [ptr, ec] = std::from_chars(s.value.data(), end, v);
  if (ec != std::errc() || ptr != end || !(v >= 0) || v > 1e12)
    return util::fail(
        ErrorCode::invalid_argument,
        fmt::format("{}: \"{}\" from {} must be a number, at least 0", name, s.value, s.source));
  return v;
}

// The model the configuration names, as phase two needs it: its spec (the built-in one of
// the model the provider is asked for, with [models."NAME"] applied, named NAME), that
// provider-side name, and the size of the vectors it gives.
struct ModelChoice {
  core::ModelSpec spec;
  std::string provider_model;
  std::optional<int> dimensions_sent;  // the `dimensions` parameter, when one is sent
  bool dimensions_known = false;
};

// `with_dimensions`: also --dimensions (any source); a command that sends nothing ignores it.
util::Result<ModelChoice> model_choice(const RawConfig& raw, bool with_dimensions) {
  ModelChoice c;
  const std::string& name = raw.model.value;
  const ModelOverride* o = nullptr;
  if (auto it = raw.models.find(name); it != raw.models.end()) o = &it->second;
  const std::string where = fmt::format("[models.\"{}\"]", name);
  c.provider_model = o && o->model.is_set() ? o->model.value : name;
  // The facts of the model that answers; the name rows are stored under is ours.
  c.spec = core::model_or_default(c.provider_model);
  const core::ModelSpec native = c.spec;
  c.spec.name = name;
  std::optional<int> configured_dimensions;
  if (o) {
    if (o->encoding.is_set()) {
      if (auto e = tokenizer::parse_encoding(o->encoding.value); !e)
        return std::unexpected(wrong(where + " encoding", o->encoding, e.error().message));
      c.spec.encoding = o->encoding.value;
    }
    if (o->max_input_tokens.is_set()) {
      auto v = whole(o->max_input_tokens, where + " max_input_tokens", {1, 10'000'000});
      if (!v) return std::unexpected(v.error());
      c.spec.max_input_tokens = static_cast<int>(*v);
    }
    if (o->usd_per_million_tokens.is_set()) {
      auto v = non_negative(o->usd_per_million_tokens, where + " usd_per_million_tokens");
      if (!v) return std::unexpected(v.error());
      c.spec.usd_per_million_tokens = *v;
    }
    if (o->dimensions.is_set()) {
      auto v = whole(o->dimensions, where + " dimensions", {1, std::numeric_limits<int>::max()});
      if (!v) return std::unexpected(v.error());
      if (!core::accepts_dimensions(native, static_cast<int>(*v))) {
        return std::unexpected(
            wrong(where + " dimensions", o->dimensions,
                  fmt::format("{} gives {} dimensions", native.name, core::dimensions_range_text(native))));
      }
      c.spec.default_dimensions = static_cast<int>(*v);
      // An alias of a model with a range asks it for this size; a model of its own
      // (unknown range) simply has this size and is not sent the parameter.
      if (native.max_dimensions > 0 && *v != native.default_dimensions) configured_dimensions = *v;
    }
  }
  if (with_dimensions && raw.dimensions.is_set()) {
    const auto v = whole(raw.dimensions, "--dimensions", {1, std::numeric_limits<int>::max()});
    if (!v) return std::unexpected(v.error());
    if (!core::accepts_dimensions(native, static_cast<int>(*v))) {
      return std::unexpected(
          wrong("--dimensions", raw.dimensions,
                fmt::format("{} gives {} dimensions", native.name, core::dimensions_range_text(native))));
    }
    c.spec.default_dimensions = static_cast<int>(*v);
    // A model of fixed size refuses the parameter even when it names its own size.
    configured_dimensions = static_cast<int>(*v);
    if (native.max_dimensions > 0 && native.min_dimensions == native.max_dimensions)
      configured_dimensions.reset();
  }
  c.dimensions_sent = configured_dimensions;
  c.dimensions_known = native.max_dimensions > 0 || (o && o->dimensions.is_set()) ||
                       (with_dimensions && raw.dimensions.is_set());
  return c;
}

util::Result<ProviderSettings> provider_settings(const RawConfig& raw, const ModelChoice& model) {
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
  p.dimensions = model.dimensions_sent;
  p.model = model.provider_model;
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
  const auto unavailable = whole(raw.unavailable_after, "--unavailable-after", k_unavailable_after_bounds);
  if (!unavailable) return std::unexpected(unavailable.error());
  r.unavailable_after = std::chrono::seconds(*unavailable);
  const auto sweep = whole(raw.sweep_every, "--sweep-every", k_sweep_every_bounds);
  if (!sweep) return std::unexpected(sweep.error());
  r.sweep_every = std::chrono::seconds(*sweep);
  if (raw.metrics_addr.is_set()) {
    auto addr = metrics::parse_listen_address(raw.metrics_addr.value);
    if (!addr) return std::unexpected(wrong("--metrics-addr", raw.metrics_addr, addr.error().message));
    r.metrics_addr = std::move(*addr);
  }
  if (raw.long_input.value == "chunk")
    r.long_input = pipeline::LongInput::chunk;
  else if (raw.long_input.value != "truncate")
    return std::unexpected(wrong("--long-input", raw.long_input, "use truncate or chunk"));
  return r;
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
  auto model = model_choice(raw, uses.provider || uses.run || uses.dimensions);
  if (!model) return std::unexpected(model.error());
  s.model_spec = model->spec;
  s.dimensions = model->spec.default_dimensions;
  s.dimensions_known = model->dimensions_known;
  auto mapping = core::make_source_mapping(raw.mapping);
  if (!mapping) return std::unexpected(mapping.error());
  s.mapping = std::move(*mapping);
  if (uses.run) {
    auto run = run_settings(raw);
    if (!run) return std::unexpected(run.error());
    s.run = *run;
  }
  if (uses.provider) {
    auto provider = provider_settings(raw, *model);
    if (!provider) return std::unexpected(provider.error());
    s.provider_settings = std::move(*provider);
  }
  return s;
}

}  // namespace lens::cli
