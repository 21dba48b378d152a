// Unit tests of the OpenAI wire format: JSON escaping for any bytes, response parsing
// and validation, header parsing and failure classification.
#include "provider/openai/wire.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "util/redact.h"
#include "util/utf8.h"

namespace lens::provider::openai {
namespace {

using std::chrono::milliseconds;

std::string base64(const std::vector<float>& v) {
  static constexpr char k[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes(v.size() * 4, '\0');
  std::memcpy(bytes.data(), v.data(), bytes.size());
  std::string out;
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const auto n = (std::uint32_t(std::uint8_t(bytes[i])) << 16) |
                   (std::uint32_t(std::uint8_t(bytes[i + 1])) << 8) | std::uint8_t(bytes[i + 2]);
    out += {k[n >> 18], k[(n >> 12) & 63], k[(n >> 6) & 63], k[n & 63]};
  }
  if (bytes.size() - i == 1) {
    const auto n = std::uint32_t(std::uint8_t(bytes[i])) << 16;
    out += {k[n >> 18], k[(n >> 12) & 63], '=', '='};
  } else if (bytes.size() - i == 2) {
    const auto n =
        (std::uint32_t(std::uint8_t(bytes[i])) << 16) | (std::uint32_t(std::uint8_t(bytes[i + 1])) << 8);
    out += {k[n >> 18], k[(n >> 12) & 63], k[(n >> 6) & 63], '='};
  }
  return out;
}

// Parses `json` with simdjson (which validates UTF-8 too) and returns input[i].
std::vector<std::string> inputs_of(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(json);
  std::vector<std::string> out;
  for (auto s : doc["input"].get_array())
    out.emplace_back(std::string_view(s.get_string()));
  return out;
}

TEST(RequestBody, EscapesEveryByteSequenceToValidJson) {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 2000; ++round) {
    std::string text(rng() % 40, '\0');
    for (char& c : text) {
      // Bias towards the interesting bytes: controls, quotes, backslashes, UTF-8 leads.
      const auto r = rng() % 6;
      c = static_cast<char>(r == 0 ? rng() % 0x20 : r == 1 ? '"' : r == 2 ? '\\' : rng() % 256);
    }
    const std::string_view in[] = {text, "plain"};
    std::string body;
    build_request_body(body, "m\"odel", in, "base64", 256);
    std::vector<std::string> back;
    ASSERT_NO_THROW(back = inputs_of(body)) << body;
    ASSERT_EQ(back.size(), 2u);
    EXPECT_EQ(back[0], util::is_valid_utf8(text) ? text : util::repair_utf8(text));
    EXPECT_EQ(back[1], "plain");
  }
}

TEST(RequestBody, KeepsValidUnicodeAndAddsDimensionsOnlyWhenSet) {
  const std::string text = "h\xC3\xA9llo \xF0\x9F\x98\x80 \xE2\x80\xA8 \x7f tab\tnl\n";
  const std::string_view in[] = {text};
  std::string body;
  build_request_body(body, "text-embedding-3-small", in, "float", std::nullopt);
  EXPECT_EQ(inputs_of(body)[0], text);
  EXPECT_EQ(body.find("dimensions"), std::string::npos);
  EXPECT_NE(body.find("\"encoding_format\":\"float\""), std::string::npos);
  build_request_body(body, "m", in, "base64", 512);
  EXPECT_NE(body.find("\"dimensions\":512"), std::string::npos);
}

TEST(Base64, DecodesLittleEndianFloatsOfAnyLength) {
  for (std::size_t n : {1u, 2u, 3u, 4u, 7u, 1536u}) {
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i)
      v[i] = static_cast<float>(i) * 0.25f - 3.0f;
    std::vector<float> out(n);
    ASSERT_TRUE(decode_base64_floats(base64(v), out)) << n;
    EXPECT_EQ(out, v);
    EXPECT_FALSE(decode_base64_floats(base64(v) + "AAAA", out));
  }
  std::vector<float> out(1);
  EXPECT_FALSE(decode_base64_floats("AA*A AA", out));
}

// The check rides on the decoding (whole words of 3 floats, then the rest one by one):
// a NaN or infinity at any position of either part must be seen, and only then.
TEST(Base64, ReportsNonFiniteValuesAtEveryPosition) {
  for (std::size_t n : {1u, 2u, 3u, 4u, 5u, 6u, 7u, 13u, 3072u}) {
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i)
      v[i] = static_cast<float>(i) * -0.5f + 1.0f;
    std::vector<float> out(n);
    bool finite = false;
    ASSERT_TRUE(decode_base64_floats(base64(v), out, &finite)) << n;
    EXPECT_TRUE(finite) << n;
    EXPECT_EQ(out, v) << n;
    for (std::size_t at = 0; at < n; at += (n > 20 ? 997 : 1)) {
      for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                        -std::numeric_limits<float>::infinity()}) {
        auto w = v;
        w[at] = bad;
        finite = true;
        ASSERT_TRUE(decode_base64_floats(base64(w), out, &finite)) << n << " at " << at;
        EXPECT_FALSE(finite) << n << " at " << at;
      }
    }
    auto last = v;  // the last value, in the tail or in the last whole word
    last[n - 1] = std::numeric_limits<float>::quiet_NaN();
    finite = true;
    ASSERT_TRUE(decode_base64_floats(base64(last), out, &finite));
    EXPECT_FALSE(finite) << n;
  }
}

std::string response_b64(const std::vector<std::vector<float>>& vecs, const std::vector<int>& order) {
  std::string s = R"({"object":"list","data":[)";
  for (std::size_t k = 0; k < order.size(); ++k) {
    if (k) s += ',';
    s += R"({"object":"embedding","index":)" + std::to_string(order[k]) + R"(,"embedding":")" +
         base64(vecs[static_cast<std::size_t>(order[k])]) + "\"}";
  }
  s += R"(],"model":"m","usage":{"prompt_tokens":17,"total_tokens":17}})";
  return s;
}

std::vector<std::vector<float>> sample(std::size_t n, std::size_t dims) {
  std::vector<std::vector<float>> v(n, std::vector<float>(dims));
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t d = 0; d < dims; ++d)
      v[i][d] = static_cast<float>(i * 100 + d) / 7.0f;
  return v;
}

TEST(ResponseParser, MatchesByIndexNotPosition) {
  ResponseParser p;
  const auto v = sample(3, 5);
  std::string body = response_b64(v, {2, 0, 1});
  auto r = p.parse(body, 3, std::nullopt);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->dimensions, 5);
  EXPECT_EQ(r->prompt_tokens, 17);
  for (std::size_t i = 0; i < 3; ++i)
    EXPECT_EQ(std::vector<float>(r->vectors.begin() + static_cast<long>(i * 5),
                                 r->vectors.begin() + static_cast<long>(i * 5 + 5)),
              v[i]);
}

TEST(ResponseParser, AcceptsFloatArraysInAnyFieldOrder) {
  ResponseParser p;
  std::string body =
      R"({"data":[{"embedding":[0.5,-1.25,3],"index":1},{"index":0,"embedding":[1,2,3.5e-3]}],"usage":{"prompt_tokens":4}})";
  auto r = p.parse(body, 2, 3);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->vectors, (std::vector<float>{1, 2, 3.5e-3f, 0.5f, -1.25f, 3}));
}

TEST(ResponseParser, RejectsWrongCountIndicesDimensionsAndValues) {
  ResponseParser p;
  const auto v = sample(3, 4);
  auto bad = [&](std::string body, std::size_t n, std::optional<int> dims) {
    auto r = p.parse(body, n, dims);
    if (r) return std::string("accepted");
    EXPECT_EQ(r.error().code, util::ErrorCode::invalid_response);
    return r.error().message;
  };
  EXPECT_NE(bad(response_b64(v, {0, 1}), 3, std::nullopt), "accepted");     // short
  EXPECT_NE(bad(response_b64(v, {0, 1, 1}), 3, std::nullopt), "accepted");  // duplicate
  EXPECT_NE(bad(response_b64(v, {0, 1, 2}), 2, std::nullopt), "accepted");  // out of range
  auto nan = v;
  nan[1][2] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NE(bad(response_b64(nan, {0, 1, 2}), 3, std::nullopt), "accepted");
  auto inf = v;
  inf[2][0] = -std::numeric_limits<float>::infinity();
  EXPECT_NE(bad(response_b64(inf, {0, 1, 2}), 3, std::nullopt), "accepted");
  const std::string good = response_b64(v, {0, 1, 2});
  EXPECT_NE(bad(good.substr(0, good.size() / 2), 3, std::nullopt), "accepted");  // truncated
  EXPECT_NE(bad("{\"data\": [ NaN ]}", 3, std::nullopt), "accepted");
  EXPECT_NE(bad("<html>502</html>", 3, std::nullopt), "accepted");
  EXPECT_NE(
      bad(R"({"data":[{"index":0,"embedding":[1,2]},{"index":1,"embedding":[1,2,3]}]})", 2, std::nullopt),
      "accepted");
  EXPECT_NE(bad(R"({"data":[{"index":0,"embedding":[1e39]}]})", 1, std::nullopt), "accepted");
  // Vectors of another size than asked, from the first one on: the model behind the endpoint
  // ignores `dimensions` (or is another), which every request would meet: configuration.
  std::string wrong = response_b64(v, {0, 1, 2});
  auto sized = p.parse(wrong, 3, 8);
  ASSERT_FALSE(sized);
  EXPECT_EQ(sized.error().code, util::ErrorCode::configuration);
  EXPECT_EQ(sized.error().message, "the provider answered vectors of 4 dimensions where 8 were expected");
  std::string wrong_array = R"({"data":[{"index":0,"embedding":[1,2,3]}]})";
  auto longer = p.parse(wrong_array, 1, 2);
  ASSERT_FALSE(longer);
  EXPECT_EQ(longer.error().code, util::ErrorCode::configuration);
  // The parser recovers after failures.
  std::string again = good;
  EXPECT_TRUE(p.parse(again, 3, 4));
}

TEST(Headers, ParsesRetryAfterAndRateLimits) {
  ResponseHeaders h;
  for (const char* line : {"HTTP/1.1 429 Too Many Requests\r\n", "Retry-After-Ms: 250\r\n",
                           "retry-after: 2\r\n", "x-ratelimit-limit-requests: 5000\r\n",
                           "x-ratelimit-remaining-requests: 4999\r\n", "X-RateLimit-Remaining-Tokens: 0\r\n",
                           "x-ratelimit-reset-requests: 12ms\r\n", "x-ratelimit-reset-tokens: 6m0s\r\n",
                           "x-ratelimit-limit-tokens: 1000000\r\n", "content-type: application/json\r\n"}) {
    parse_header_line(line, h);
  }
  EXPECT_EQ(h.retry_after_ms, milliseconds(250));
  EXPECT_EQ(h.retry_after, milliseconds(2000));
  EXPECT_EQ(h.rate.limit_requests, 5000);
  EXPECT_EQ(h.rate.remaining_requests, 4999);
  EXPECT_EQ(h.rate.remaining_tokens, 0);
  EXPECT_EQ(h.rate.limit_tokens, 1e6);
  EXPECT_EQ(h.rate.reset_requests, milliseconds(12));
  EXPECT_EQ(h.rate.reset_tokens, milliseconds(360000));
}

TEST(Headers, DurationsAndTryAgainText) {
  EXPECT_EQ(parse_duration("1s"), milliseconds(1000));
  EXPECT_EQ(parse_duration("1h2m3.5s"), milliseconds(3723500));
  EXPECT_EQ(parse_duration("0.5"), milliseconds(500));
  EXPECT_EQ(parse_duration("120ms"), milliseconds(120));
  EXPECT_EQ(parse_duration("soon"), std::nullopt);
  EXPECT_EQ(parse_try_again_in("Limit 1000000, Used 999000, Requested 5000. Please try again in 42ms. Visit"),
            milliseconds(42));
  EXPECT_EQ(parse_try_again_in("Please try again in 1.5s."), milliseconds(1500));
  EXPECT_EQ(parse_try_again_in("Please try again later."), std::nullopt);
}

TEST(Classify, AdvisedDelayPrecedence) {
  ResponseHeaders h;
  h.rate.remaining_tokens = 0;
  h.rate.remaining_requests = 10;
  h.rate.reset_tokens = milliseconds(900);
  h.rate.reset_requests = milliseconds(5);
  EXPECT_EQ(advised_delay(h, ""), milliseconds(900));
  EXPECT_EQ(advised_delay(h, "try again in 30ms"), milliseconds(30));
  h.retry_after = milliseconds(1000);
  EXPECT_EQ(advised_delay(h, "try again in 30ms"), milliseconds(1000));
  h.retry_after_ms = milliseconds(7);
  EXPECT_EQ(advised_delay(h, "try again in 30ms"), milliseconds(7));
}

TEST(Classify, StatusTable) {
  const ResponseHeaders none;
  auto code = [&](int status, ErrorBody e = {}) {
    return classify_http(status, none, e, "", "m").error.code;
  };
  using util::ErrorCode;
  EXPECT_EQ(code(429), ErrorCode::rate_limited);
  EXPECT_EQ(code(429, {"You exceeded your current quota, please check your plan and billing details.",
                       "insufficient_quota", "", "insufficient_quota"}),
            ErrorCode::fatal);
  for (int s : {408, 409, 500, 502, 503, 504})
    EXPECT_EQ(code(s), ErrorCode::transient) << s;
  for (int s : {401, 403, 404})
    EXPECT_EQ(code(s), ErrorCode::configuration) << s;
  const ErrorBody ctx{
      "This model's maximum context length is 8192 tokens, however you requested 9000 tokens "
      "(9000 in your prompt; 0 for the completion). Please reduce your prompt; or completion length.",
      "invalid_request_error", "", ""};
  const auto f = classify_http(400, none, ctx, "", "m");
  EXPECT_EQ(f.error.code, ErrorCode::bad_input);
  EXPECT_TRUE(f.context_length);
  EXPECT_EQ(
      code(400, {"'$.input' is invalid. Please check the API reference", "invalid_request_error", "", ""}),
      ErrorCode::bad_input);
  EXPECT_EQ(code(400, {"This model does not support specifying dimensions.", "invalid_request_error",
                       "dimensions", ""}),
            ErrorCode::fatal);
  EXPECT_EQ(code(418), ErrorCode::permanent);
}

TEST(Classify, TransportErrorsRetryExceptCertificates) {
  EXPECT_EQ(classify_transport(TransportError::timeout, "x").error.code, util::ErrorCode::transient);
  EXPECT_EQ(classify_transport(TransportError::reset, "x").error.code, util::ErrorCode::transient);
  // A certificate that fails verification is the user's to fix (exit 2), and the message
  // says how: both ways to trust a private CA.
  const auto tls = classify_transport(TransportError::tls_verify, "unable to get local issuer certificate");
  EXPECT_EQ(tls.error.code, util::ErrorCode::configuration);
  EXPECT_NE(tls.error.message.find("--ca-cert"), std::string::npos) << tls.error.message;
  EXPECT_NE(tls.error.message.find("SSL_CERT_FILE"), std::string::npos) << tls.error.message;
  EXPECT_NE(tls.error.message.find("unable to get local issuer certificate"), std::string::npos);
  EXPECT_EQ(classify_transport(TransportError::tls_setup, "x").error.code, util::ErrorCode::configuration);
}

TEST(Classify, MessagesCarryRedactedSnippets) {
  util::register_secret("sk-wire-test-secret-123");
  const ErrorBody e{"Incorrect API key provided: sk-wire-test-secret-123.", "invalid_request_error", "",
                    "invalid_api_key"};
  const auto f = classify_http(401, {}, e, "", "m");
  EXPECT_EQ(f.error.message.find("sk-wire-test-secret-123"), std::string::npos) << f.error.message;
  EXPECT_NE(f.error.message.find("401"), std::string::npos);
}

TEST(ErrorBodies, ParsesOpenAiAndOtherShapes) {
  const auto e = parse_error_body(
      R"({"error":{"message":"Rate limit reached","type":"tokens","param":null,"code":"rate_limit_exceeded"}})");
  EXPECT_EQ(e.message, "Rate limit reached");
  EXPECT_EQ(e.type, "tokens");
  EXPECT_EQ(e.param, "");
  EXPECT_EQ(e.code, "rate_limit_exceeded");
  EXPECT_EQ(parse_error_body(R"({"detail":"Not Found"})").message, "Not Found");
  EXPECT_EQ(parse_error_body(R"({"error":"bad thing"})").message, "bad thing");
  EXPECT_EQ(parse_error_body("<html>").message, "");
}

}  // namespace
}  // namespace lens::provider::openai
