// Request bodies, header parsing, base64 and failure classification for the OpenAI
// wire format. No I/O and no third-party headers here.
#include "provider/openai/wire.h"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ctime>

#include "util/redact.h"
#include "util/utf8.h"

namespace lens::provider::openai {
namespace {

using std::chrono::milliseconds;

// 0 = copy as is; 1 = short escape; 2 = \u00XX.
constexpr std::array<std::uint8_t, 256> make_escape_table() {
  std::array<std::uint8_t, 256> t{};
  for (int c = 0; c < 0x20; ++c)
    t[static_cast<std::size_t>(c)] = 2;
  t['"'] = 1;
  t['\\'] = 1;
  t['\b'] = 1;
  t['\f'] = 1;
  t['\n'] = 1;
  t['\r'] = 1;
  t['\t'] = 1;
  return t;
}
constexpr auto k_escape = make_escape_table();

void append_escaped_valid(std::string& out, std::string_view text) {
  static constexpr char k_hex[] = "0123456789abcdef";
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    // Copy the longest run that needs no escaping in one go: most text is such a run.
    const char* run = p;
    while (p < end && k_escape[static_cast<unsigned char>(*p)] == 0)
      ++p;
    out.append(run, static_cast<std::size_t>(p - run));
    if (p == end) break;
    const auto c = static_cast<unsigned char>(*p++);
    if (k_escape[c] == 1) {
      out.push_back('\\');
      switch (c) {
        case '\b':
          out.push_back('b');
          break;
        case '\f':
          out.push_back('f');
          break;
        case '\n':
          out.push_back('n');
          break;
        case '\r':
          out.push_back('r');
          break;
        case '\t':
          out.push_back('t');
          break;
        default:
          out.push_back(static_cast<char>(c));
          break;  // '"' and '\\'
      }
    } else {
      const char u[6] = {'\\', 'u', '0', '0', k_hex[c >> 4], k_hex[c & 15]};
      out.append(u, 6);
    }
  }
}

bool iequals_prefix(std::string_view line, std::string_view lower_name) {
  if (line.size() < lower_name.size()) return false;
  for (std::size_t i = 0; i < lower_name.size(); ++i) {
    char c = line[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower_name[i]) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

std::optional<double> parse_number(std::string_view s) {
  s = trim(s);
  double v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || ptr == s.data() || !std::isfinite(v)) return std::nullopt;
  return v;
}

milliseconds to_ms(double seconds) {
  return milliseconds(static_cast<std::int64_t>(std::ceil(std::min(std::max(0.0, seconds), 1e9) * 1000.0)));
}

// retry-after: delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
std::optional<milliseconds> parse_retry_after(std::string_view value) {
  value = trim(value);
  if (auto secs = parse_number(value)) return to_ms(*secs);
  std::string text(value);
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr) return std::nullopt;
  const std::time_t when = timegm(&tm);
  const std::time_t now = std::time(nullptr);
  return milliseconds(std::max<std::int64_t>(0, static_cast<std::int64_t>(when - now)) * 1000);
}

bool contains_ci(std::string_view hay, std::string_view lower_needle) {
  if (lower_needle.empty()) return true;
  for (std::size_t i = 0; i + lower_needle.size() <= hay.size(); ++i) {
    if (iequals_prefix(hay.substr(i), lower_needle)) return true;
  }
  return false;
}

// Base64 decoding tables: each char's 6 bits pre-shifted into its place in a 24-bit
// group, so a group is four loads and three ORs; invalid chars set bit 24.
struct B64Tables {
  std::array<std::uint32_t, 256> t0, t1, t2, t3;
};
constexpr B64Tables make_b64_tables() {
  B64Tables t{};
  for (int i = 0; i < 256; ++i) {
    t.t0[static_cast<std::size_t>(i)] = t.t1[static_cast<std::size_t>(i)] =
        t.t2[static_cast<std::size_t>(i)] = t.t3[static_cast<std::size_t>(i)] = 1u << 24;
  }
  constexpr char k_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (std::uint32_t v = 0; v < 64; ++v) {
    const auto c = static_cast<unsigned char>(k_alphabet[v]);
    t.t0[c] = v << 18;
    t.t1[c] = v << 12;
    t.t2[c] = v << 6;
    t.t3[c] = v;
  }
  return t;
}
constexpr B64Tables k_b64 = make_b64_tables();

}  // namespace

void append_json_string(std::string& out, std::string_view text) {
  out.push_back('"');
  if (util::is_valid_utf8(text)) {
    append_escaped_valid(out, text);
  } else {
    append_escaped_valid(out, util::repair_utf8(text));
  }
  out.push_back('"');
}

void build_request_body(std::string& out, std::string_view model, std::span<const std::string_view> inputs,
                        std::string_view encoding_format, std::optional<int> dimensions) {
  out.clear();
  std::size_t need = 128 + model.size();
  for (auto in : inputs)
    need += in.size() + in.size() / 8 + 4;
  out.reserve(need);
  out.append("{\"model\":");
  append_json_string(out, model);
  out.append(",\"input\":[");
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (i) out.push_back(',');
    append_json_string(out, inputs[i]);
  }
  out.append("],\"encoding_format\":");
  append_json_string(out, encoding_format);
  if (dimensions) {
    out.append(",\"dimensions\":");
    out.append(std::to_string(*dimensions));
  }
  out.push_back('}');
}

std::optional<milliseconds> parse_duration(std::string_view text) {
  text = trim(text);
  if (text.empty()) return std::nullopt;
  if (auto plain = parse_number(text);
      plain && text.find_first_not_of("0123456789.") == std::string_view::npos) {
    return to_ms(*plain);
  }
  double total = 0;
  bool any = false;
  while (!text.empty()) {
    double v = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || ptr == text.data()) return std::nullopt;
    text.remove_prefix(static_cast<std::size_t>(ptr - text.data()));
    if (text.starts_with("ms")) {
      total += v / 1000.0;
      text.remove_prefix(2);
    } else if (text.starts_with("h")) {
      total += v * 3600.0;
      text.remove_prefix(1);
    } else if (text.starts_with("m")) {
      total += v * 60.0;
      text.remove_prefix(1);
    } else if (text.starts_with("s")) {
      total += v;
      text.remove_prefix(1);
    } else {
      return std::nullopt;
    }
    any = true;
  }
  if (!any) return std::nullopt;
  return to_ms(total);
}

std::optional<milliseconds> parse_try_again_in(std::string_view message) {
  static constexpr std::string_view k_marker = "try again in ";
  for (std::size_t i = 0; i + k_marker.size() <= message.size(); ++i) {
    if (!iequals_prefix(message.substr(i), k_marker)) continue;
    std::string_view rest = message.substr(i + k_marker.size());
    std::size_t n = 0;
    while (n < rest.size() && (std::isdigit(static_cast<unsigned char>(rest[n])) || rest[n] == '.' ||
                               rest[n] == 'h' || rest[n] == 'm' || rest[n] == 's')) {
      ++n;
    }
    // "1.5s." ends a sentence: the final dot is not part of the number.
    while (n > 0 && rest[n - 1] == '.')
      --n;
    if (auto d = parse_duration(rest.substr(0, n))) return d;
  }
  return std::nullopt;
}

void parse_header_line(std::string_view line, ResponseHeaders& out) {
  if (line.empty()) return;
  const char first = line[0];
  if (first != 'r' && first != 'R' && first != 'x' && first != 'X') return;
  const auto colon = line.find(':');
  if (colon == std::string_view::npos) return;
  const std::string_view name = line.substr(0, colon);
  const std::string_view value = line.substr(colon + 1);
  auto is = [&](std::string_view lower) {
    return name.size() == lower.size() && iequals_prefix(name, lower);
  };
  if (is("retry-after-ms")) {
    if (auto v = parse_number(value))
      out.retry_after_ms =
          milliseconds(static_cast<std::int64_t>(std::ceil(std::min(std::max(0.0, *v), 1e12))));
  } else if (is("retry-after")) {
    out.retry_after = parse_retry_after(value);
  } else if (iequals_prefix(name, "x-ratelimit-")) {
    const std::string_view rest = name.substr(12);
    auto is_rest = [&](std::string_view lower) {
      return rest.size() == lower.size() && iequals_prefix(rest, lower);
    };
    if (is_rest("limit-requests"))
      out.rate.limit_requests = parse_number(value);
    else if (is_rest("limit-tokens"))
      out.rate.limit_tokens = parse_number(value);
    else if (is_rest("remaining-requests"))
      out.rate.remaining_requests = parse_number(value);
    else if (is_rest("remaining-tokens"))
      out.rate.remaining_tokens = parse_number(value);
    else if (is_rest("reset-requests"))
      out.rate.reset_requests = parse_duration(value);
    else if (is_rest("reset-tokens"))
      out.rate.reset_tokens = parse_duration(value);
  }
}

bool decode_base64_floats(std::string_view text, std::span<float> out, bool* all_finite) {
  const std::size_t n_bytes = out.size() * 4;
  // Strip '=' padding; what is left must be exactly the characters for n_bytes.
  while (!text.empty() && text.back() == '=')
    text.remove_suffix(1);
  const std::size_t full_groups = n_bytes / 3;
  const std::size_t tail_bytes = n_bytes % 3;
  const std::size_t need_chars = full_groups * 4 + (tail_bytes ? tail_bytes + 1 : 0);
  if (text.size() != need_chars) return false;
  auto* dst = reinterpret_cast<unsigned char*>(out.data());
  const auto* src = reinterpret_cast<const unsigned char*>(text.data());
  std::uint32_t bad = 0;
  std::size_t g = 0;
  if constexpr (std::endian::native == std::endian::little) {
    // 16 chars = 4 groups = 12 bytes = 3 whole floats at a time, stored as words; their
    // exponents are checked here, while in registers, instead of in a second pass.
    constexpr std::uint32_t k_exp = 0x7f800000u;
    std::uint32_t nonfinite = 0;
    auto group = [&](const unsigned char* s) {
      const std::uint32_t v = k_b64.t0[s[0]] | k_b64.t1[s[1]] | k_b64.t2[s[2]] | k_b64.t3[s[3]];
      bad |= v;
      return v & 0xFFFFFFu;
    };
    for (; g + 4 <= full_groups; g += 4, src += 16, dst += 12) {
      const std::uint32_t a = group(src), b = group(src + 4), c = group(src + 8), d = group(src + 12);
      // Bytes in order: a>>16, a>>8, a, b>>16, b>>8, b, c>>16, ...; words little-endian.
      const std::uint32_t w0 = (a >> 16) | (a & 0xFF00u) | ((a & 0xFFu) << 16) | ((b >> 16) << 24);
      const std::uint32_t w1 =
          ((b >> 8) & 0xFFu) | ((b & 0xFFu) << 8) | ((c >> 16) << 16) | ((c & 0xFF00u) << 16);
      const std::uint32_t w2 = (c & 0xFFu) | ((d >> 16) << 8) | ((d & 0xFF00u) << 8) | ((d & 0xFFu) << 24);
      nonfinite |= static_cast<std::uint32_t>((w0 & k_exp) == k_exp) |
                   static_cast<std::uint32_t>((w1 & k_exp) == k_exp) |
                   static_cast<std::uint32_t>((w2 & k_exp) == k_exp);
      std::memcpy(dst, &w0, 4);
      std::memcpy(dst + 4, &w1, 4);
      std::memcpy(dst + 8, &w2, 4);
    }
    if (all_finite) {
      // The floats after the last whole 12 bytes are checked below, once decoded.
      *all_finite = nonfinite == 0;
    }
  }
  const std::size_t checked_floats = g * 3 / 4;
  for (; g < full_groups; ++g) {
    const std::uint32_t v = k_b64.t0[src[0]] | k_b64.t1[src[1]] | k_b64.t2[src[2]] | k_b64.t3[src[3]];
    bad |= v;
    dst[0] = static_cast<unsigned char>(v >> 16);
    dst[1] = static_cast<unsigned char>(v >> 8);
    dst[2] = static_cast<unsigned char>(v);
    src += 4;
    dst += 3;
  }
  if (tail_bytes) {
    std::uint32_t v = k_b64.t0[src[0]] | k_b64.t1[src[1]];
    if (tail_bytes == 2) v |= k_b64.t2[src[2]];
    bad |= v;
    dst[0] = static_cast<unsigned char>(v >> 16);
    if (tail_bytes == 2) dst[1] = static_cast<unsigned char>(v >> 8);
  }
  if (bad & (1u << 24)) return false;
  if constexpr (std::endian::native == std::endian::big) {
    for (float& f : out)
      f = std::bit_cast<float>(std::byteswap(std::bit_cast<std::uint32_t>(f)));
  }
  if (all_finite) {
    if constexpr (std::endian::native != std::endian::little) *all_finite = true;
    for (std::size_t i = checked_floats; i < out.size() && *all_finite; ++i)
      *all_finite = std::isfinite(out[i]);
  }
  return true;
}

std::string snippet(std::string_view body, std::size_t max_bytes) {
  std::size_t n = std::min(max_bytes, body.size());
  // Do not cut inside a code point.
  if (n < body.size()) {
    while (n > 0 && (static_cast<unsigned char>(body[n]) & 0xC0) == 0x80)
      --n;
  }
  std::string cut = util::repair_utf8(body.substr(0, n));
  for (char& c : cut) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  if (n < body.size()) cut += "...";
  return util::redact(cut);
}

std::optional<milliseconds> advised_delay(const ResponseHeaders& headers, std::string_view message) {
  if (headers.retry_after_ms) return headers.retry_after_ms;
  if (headers.retry_after) return headers.retry_after;
  if (auto d = parse_try_again_in(message)) return d;
  const auto& r = headers.rate;
  const bool requests_out = r.remaining_requests && *r.remaining_requests <= 0;
  const bool tokens_out = r.remaining_tokens && *r.remaining_tokens <= 0;
  std::optional<milliseconds> pick;
  auto consider = [&](const std::optional<milliseconds>& d) {
    if (d && (!pick || *d > *pick)) pick = d;
  };
  if (requests_out) consider(r.reset_requests);
  if (tokens_out) consider(r.reset_tokens);
  if (!pick && !requests_out && !tokens_out) {
    consider(r.reset_requests);
    consider(r.reset_tokens);
  }
  return pick;
}

EmbedFailure classify_transport(TransportError kind, std::string_view detail) {
  EmbedFailure f;
  f.http_status = 0;
  switch (kind) {
    case TransportError::timeout:
      f.error = util::Error{util::ErrorCode::transient, "timeout: " + util::redact(detail)};
      break;
    case TransportError::connect:
      f.error = util::Error{util::ErrorCode::transient, "cannot connect: " + util::redact(detail)};
      break;
    case TransportError::reset:
      f.error = util::Error{util::ErrorCode::transient, "connection lost: " + util::redact(detail)};
      break;
    case TransportError::tls_verify:
      f.error = util::Error{util::ErrorCode::configuration,
                            "TLS certificate verification failed (" + util::redact(detail) +
                                "). If the server's certificate comes from a private CA, trust it with "
                                "--ca-cert FILE (or <PROVIDER>_CA_CERT, ca_cert in [providers.NAME], or "
                                "SSL_CERT_FILE); check that --base-url names the host the certificate "
                                "is for; --insecure skips verification (not for production)"};
      break;
    case TransportError::tls_setup:
      f.error = util::Error{util::ErrorCode::configuration,
                            "TLS setup failed (" + util::redact(detail) +
                                "); check the file given by --ca-cert or SSL_CERT_FILE"};
      break;
    case TransportError::bad_url:
      f.error = util::Error{util::ErrorCode::fatal, "bad base URL: " + util::redact(detail)};
      break;
    case TransportError::other:
      f.error = util::Error{util::ErrorCode::transient, "transfer failed: " + util::redact(detail)};
      break;
  }
  return f;
}

EmbedFailure classify_http(int status, const ResponseHeaders& headers, const ErrorBody& error,
                           std::string_view body, std::string_view model) {
  EmbedFailure f;
  f.http_status = status;
  const std::string_view msg = error.message;
  const std::string detail = "HTTP " + std::to_string(status) + " (model " + std::string(model) +
                             "): " + (error.message.empty() ? snippet(body) : snippet(error.message));
  using util::ErrorCode;
  if (status == 429) {
    if (error.code == "insufficient_quota" || error.type == "insufficient_quota" ||
        contains_ci(msg, "exceeded your current quota")) {
      f.error = util::Error{ErrorCode::fatal,
                            "the provider says the account's quota is exhausted; check the plan "
                            "and billing. " +
                                detail};
      return f;
    }
    f.error = util::Error{ErrorCode::rate_limited, detail};
    f.retry_after = advised_delay(headers, msg);
    return f;
  }
  if (status == 408 || status == 409 || status >= 500) {
    f.error = util::Error{ErrorCode::transient, detail};
    f.retry_after = advised_delay(headers, msg);
    return f;
  }
  // A wrong key, endpoint or model is the user's to fix: a configuration error (exit 2).
  if (status == 401 || status == 403) {
    f.error = util::Error{ErrorCode::configuration, "the provider refused the API key (HTTP " +
                                                        std::to_string(status) +
                                                        "); check <PROVIDER>_API_KEY. " + detail};
    return f;
  }
  if (status == 404) {
    f.error = util::Error{ErrorCode::configuration,
                          "not found (HTTP 404): check --base-url (it should end where /embeddings "
                          "is served, e.g. .../v1) and --model. " +
                              detail};
    return f;
  }
  if (status == 400 || status == 413 || status == 422) {
    const bool context = error.code == "context_length_exceeded" ||
                         contains_ci(msg, "maximum context length") || contains_ci(msg, "context length") ||
                         contains_ci(msg, "too many tokens") || (status == 413);
    if (context) {
      f.error = util::Error{ErrorCode::bad_input, detail};
      f.context_length = status != 413 || contains_ci(msg, "token");
      return f;
    }
    // A complaint about a request parameter rather than an input: splitting cannot help,
    // every request would fail the same way.
    const bool about_param =
        (!error.param.empty() && error.param != "input" && !error.param.starts_with("input")) ||
        contains_ci(msg, "dimensions") || contains_ci(msg, "encoding_format") ||
        error.code == "model_not_found";
    if (about_param && !contains_ci(msg, "'input") && !contains_ci(msg, "input[")) {
      f.error = util::Error{ErrorCode::fatal, "the provider rejected the request's parameters. " + detail};
      return f;
    }
    f.error = util::Error{ErrorCode::bad_input, detail};
    return f;
  }
  if (status >= 300 && status < 400) {
    f.error = util::Error{ErrorCode::fatal, "unexpected redirect (HTTP " + std::to_string(status) +
                                                "); check --base-url. " + detail};
    return f;
  }
  f.error = util::Error{ErrorCode::permanent, detail};
  return f;
}

}  // namespace lens::provider::openai
