// The OpenAI-compatible client against the in-process stand-in: every fault the
// stand-in can produce is classified as the pipeline expects, vectors arrive bit-exact.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "provider/openai/openai_provider.h"
#include "stand_in_vector.h"
#include "support/stand_in.h"
#include "util/log.h"

namespace lens::provider {
namespace {

using std::chrono::milliseconds;
using util::ErrorCode;

constexpr const char* k_key = "sk-client-test-7f3a9c2e5b8d1f4a";

struct Fixture {
  test::StandIn server;
  std::unique_ptr<Provider> client;

  explicit Fixture(stand_in::StandInOptions so, OpenAiOptions co = {})
      : server([&] {
          so.api_key = so.api_key.empty() ? k_key : so.api_key;
          return so;
        }()) {
    EXPECT_TRUE(server.ok());
    // With a trailing slash: the client must not double it.
    if (co.base_url.empty()) co.base_url = server.base_url() + "/";
    if (co.api_key.empty()) co.api_key = k_key;
    if (co.model.empty()) co.model = "text-embedding-3-small";
    // Far above any answer of the in-process stand-in, even under a sanitizer on a busy
    // machine (5 s was not, for 100 requests queued on 32 connections); a test of
    // timeouts sets its own.
    if (co.request_timeout == milliseconds(120'000)) co.request_timeout = milliseconds(60'000);
    auto made = make_openai_provider(co);
    EXPECT_TRUE(made) << (made ? "" : made.error().message);
    if (made) client = std::move(*made);
  }

  // Submits one request and polls until its completion arrives.
  Completion embed(const std::vector<std::string_view>& inputs, std::optional<int> dims = 8) {
    client->submit(EmbedRequest{42, inputs, dims, {}});
    for (;;) {
      auto done = client->poll(milliseconds(1000));
      if (!done.empty()) {
        EXPECT_EQ(done.size(), 1u);
        EXPECT_EQ(client->in_flight(), 0u);
        return std::move(done.front());
      }
    }
  }
};

std::vector<float> expected(std::string_view text, int dims) {
  std::vector<float> v(static_cast<std::size_t>(dims));
  stand_in::stand_in_vector(text, v);
  return v;
}

void expect_vectors(const Completion& c, const std::vector<std::string_view>& inputs, int dims) {
  ASSERT_TRUE(c.result) << c.result.error().error.message;
  ASSERT_EQ(c.result->dimensions, dims);
  ASSERT_EQ(c.result->vectors.size(), inputs.size() * static_cast<std::size_t>(dims));
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const std::vector<float> got(c.result->vectors.begin() + static_cast<long>(i) * dims,
                                 c.result->vectors.begin() + static_cast<long>(i + 1) * dims);
    EXPECT_EQ(got, expected(inputs[i], dims)) << "input " << i;
  }
}

const std::vector<std::string_view> k_inputs = {"hello", "wörld \"quoted\"\n", "third input",
                                                "\xF0\x9F\x98\x80 emoji", "fifth"};

TEST(OpenAiClient, Base64VectorsMatchByIndexWhenShuffled) {
  stand_in::StandInOptions so;
  so.shuffle = true;
  Fixture f(so);
  expect_vectors(f.embed(k_inputs, 16), k_inputs, 16);
  const auto c = f.embed(k_inputs, std::nullopt);  // server default dimensions
  expect_vectors(c, k_inputs, 1536);
  EXPECT_GT(c.result->prompt_tokens, 0);
}

TEST(OpenAiClient, FloatFormatGivesTheSameVectors) {
  OpenAiOptions co;
  co.encoding_format = "float";
  Fixture f({}, co);
  expect_vectors(f.embed(k_inputs, 16), k_inputs, 16);
}

TEST(OpenAiClient, ServerThatIgnoresBase64StillWorks) {
  stand_in::StandInOptions so;
  so.float_only = true;
  Fixture f(so);
  expect_vectors(f.embed(k_inputs, 8), k_inputs, 8);
}

TEST(OpenAiClient, ServerThatRejectsBase64SwitchesToFloat) {
  stand_in::StandInOptions so;
  so.reject_base64 = true;
  Fixture f(so);
  const auto first = f.embed(k_inputs);
  ASSERT_FALSE(first.result);
  EXPECT_EQ(first.result.error().error.code, ErrorCode::transient);  // the caller retries
  expect_vectors(f.embed(k_inputs, 8), k_inputs, 8);
}

TEST(OpenAiClient, ReportsRateLimitHeadersOnSuccess) {
  stand_in::StandInOptions so;
  so.rpm = 6000;
  so.tpm = 600000;
  Fixture f(so);
  const auto c = f.embed(k_inputs);
  ASSERT_TRUE(c.result);
  EXPECT_EQ(c.rate.limit_requests, 6000);
  EXPECT_EQ(c.rate.limit_tokens, 600000);
  ASSERT_TRUE(c.rate.remaining_tokens);
  EXPECT_LT(*c.rate.remaining_tokens, 10000);
  EXPECT_TRUE(c.rate.reset_tokens);
}

TEST(OpenAiClient, RateLimit429IsRateLimitedWithAdvisedDelay) {
  stand_in::StandInOptions so;
  so.rpm = 60;  // one request per second, bucket of one
  // The second request meets the 429 however long after the first it comes.
  so.frozen_buckets = true;
  Fixture f(so);
  ASSERT_TRUE(f.embed(k_inputs).result);
  const auto c = f.embed(k_inputs);
  ASSERT_FALSE(c.result);
  EXPECT_EQ(c.result.error().error.code, ErrorCode::rate_limited);
  EXPECT_EQ(c.result.error().http_status, 429);
  ASSERT_TRUE(c.result.error().retry_after);  // from "Please try again in Xms"
  EXPECT_GT(c.result.error().retry_after->count(), 0);
  EXPECT_LE(c.result.error().retry_after->count(), 1000);
}

TEST(OpenAiClient, RetryAfterHeadersWinOverTheMessage) {
  stand_in::StandInOptions so;
  so.p_429 = 1;
  so.retry_after_headers = true;
  Fixture f(so);
  const auto c = f.embed(k_inputs);
  ASSERT_FALSE(c.result);
  EXPECT_EQ(c.result.error().error.code, ErrorCode::rate_limited);
  EXPECT_EQ(c.result.error().retry_after, milliseconds(1));  // retry-after-ms: 1 (not retry-after: 1 s)
}

TEST(OpenAiClient, QuotaExhaustedIsFatalWithAClearMessage) {
  stand_in::StandInOptions so;
  so.quota_exhausted = true;
  Fixture f(so);
  const auto c = f.embed(k_inputs);
  ASSERT_FALSE(c.result);
  EXPECT_EQ(c.result.error().error.code, ErrorCode::fatal);
  EXPECT_NE(c.result.error().error.message.find("quota"), std::string::npos);
}

TEST(OpenAiClient, ServerErrorsAreTransient) {
  for (int status : {500, 502, 503}) {
    stand_in::StandInOptions so;
    (status == 500 ? so.p_500 : status == 502 ? so.p_502 : so.p_503) = 1;
    Fixture f(so);
    const auto c = f.embed(k_inputs);
    ASSERT_FALSE(c.result) << status;
    EXPECT_EQ(c.result.error().error.code, ErrorCode::transient) << status;
    EXPECT_EQ(c.result.error().http_status, status);
  }
}

TEST(OpenAiClient, ResetAndHangAreTransient) {
  {
    stand_in::StandInOptions so;
    so.p_reset = 1;
    Fixture f(so);
    const auto c = f.embed(k_inputs);
    ASSERT_FALSE(c.result);
    EXPECT_EQ(c.result.error().error.code, ErrorCode::transient) << c.result.error().error.message;
    EXPECT_EQ(c.result.error().http_status, 0);
  }
  {
    stand_in::StandInOptions so;
    so.p_hang = 1;
    so.hang_ms = 5000;
    OpenAiOptions co;
    co.request_timeout = milliseconds(300);
    Fixture f(so, co);
    const auto c = f.embed(k_inputs);
    ASSERT_FALSE(c.result);
    EXPECT_EQ(c.result.error().error.code, ErrorCode::transient);
    EXPECT_NE(c.result.error().error.message.find("timeout"), std::string::npos)
        << c.result.error().error.message;
  }
}

TEST(OpenAiClient, BrokenSuccessBodiesAreInvalidResponses) {
  struct Case {
    const char* name;
    double stand_in::StandInOptions::*p;
  };
  for (const Case& k :
       {Case{"malformed", &stand_in::StandInOptions::p_malformed},
        Case{"truncated", &stand_in::StandInOptions::p_truncated},
        Case{"short", &stand_in::StandInOptions::p_short}, Case{"nan", &stand_in::StandInOptions::p_nan},
        Case{"bad_dims", &stand_in::StandInOptions::p_bad_dims}}) {
    for (const char* format : {"base64", "float"}) {
      stand_in::StandInOptions so;
      so.*(k.p) = 1;
      OpenAiOptions co;
      co.encoding_format = format;
      Fixture f(so, co);
      const auto c = f.embed(k_inputs);
      ASSERT_FALSE(c.result) << k.name << " " << format;
      EXPECT_EQ(c.result.error().error.code, ErrorCode::invalid_response) << k.name << " " << format;
    }
  }
}

TEST(OpenAiClient, ContextLength400IsBadInput) {
  stand_in::StandInOptions so;
  so.reject_marker = "POISON";
  Fixture f(so);
  const auto c = f.embed({"fine", "this is POISON", "fine too"});
  ASSERT_FALSE(c.result);
  EXPECT_EQ(c.result.error().error.code, ErrorCode::bad_input);
  EXPECT_TRUE(c.result.error().context_length);
  EXPECT_NE(c.result.error().error.message.find("maximum context length"), std::string::npos);
  EXPECT_TRUE(f.embed({"fine", "fine too"}).result);
}

TEST(OpenAiClient, AuthAndUnknownModelAreConfigurationErrors) {
  {
    OpenAiOptions co;
    co.api_key = "sk-wrong-key-0000000000000000";
    Fixture f({}, co);
    const auto c = f.embed(k_inputs);
    ASSERT_FALSE(c.result);
    EXPECT_EQ(c.result.error().error.code, ErrorCode::configuration);
    EXPECT_EQ(c.result.error().http_status, 401);
    EXPECT_EQ(c.result.error().error.message.find("sk-wrong-key-0000000000000000"), std::string::npos);
  }
  {
    stand_in::StandInOptions so;
    so.models = "text-embedding-3-large";
    Fixture f(so);
    const auto c = f.embed(k_inputs);
    ASSERT_FALSE(c.result);
    EXPECT_EQ(c.result.error().error.code, ErrorCode::configuration);
    EXPECT_EQ(c.result.error().http_status, 404);
  }
}

TEST(OpenAiClient, ConnectionRefusedIsTransientAndBadUrlRefused) {
  OpenAiOptions co;
  co.base_url = "http://127.0.0.1:1/v1";  // nothing listens on port 1
  co.api_key = k_key;
  co.model = "m";
  auto p = make_openai_provider(co);
  ASSERT_TRUE(p);
  const std::vector<std::string_view> in = {"x"};
  (*p)->submit(EmbedRequest{7, in, std::nullopt, {}});
  std::vector<Completion> done;
  while (done.empty())
    done = (*p)->poll(milliseconds(500));
  ASSERT_FALSE(done[0].result);
  EXPECT_EQ(done[0].result.error().error.code, ErrorCode::transient);
  co.base_url = "ftp://example.com";
  EXPECT_FALSE(make_openai_provider(co));
  co.base_url = "http://127.0.0.1:1";
  co.encoding_format = "int8";
  EXPECT_FALSE(make_openai_provider(co));
}

TEST(OpenAiClient, ManyRequestsInFlightFromOneLoop) {
  stand_in::StandInOptions so;
  so.latency_ms = 50;
  so.shuffle = true;
  OpenAiOptions co;
  co.max_connections = 32;
  Fixture f(so, co);
  std::vector<std::string> texts;
  for (int i = 0; i < 400; ++i)
    texts.push_back("input number " + std::to_string(i));
  std::vector<std::vector<std::string_view>> batches(100);
  for (int i = 0; i < 400; ++i)
    batches[static_cast<std::size_t>(i / 4)].push_back(texts[static_cast<std::size_t>(i)]);
  for (std::size_t b = 0; b < batches.size(); ++b)
    f.client->submit(EmbedRequest{b, batches[b], 12, {}});
  EXPECT_EQ(f.client->in_flight(), 100u);
  std::map<std::uint64_t, Completion> got;
  while (got.size() < batches.size()) {
    for (auto& c : f.client->poll(milliseconds(1000))) {
      EXPECT_FALSE(got.contains(c.ticket));
      got.emplace(c.ticket, std::move(c));
    }
  }
  for (auto& [ticket, c] : got)
    expect_vectors(c, batches[ticket], 12);
  EXPECT_EQ(f.client->in_flight(), 0u);
  // Cancelling abandons without completions.
  for (std::size_t b = 0; b < 10; ++b)
    f.client->submit(EmbedRequest{b, batches[b], 12, {}});
  f.client->cancel_all();
  EXPECT_EQ(f.client->in_flight(), 0u);
  EXPECT_TRUE(f.client->poll(milliseconds(100)).empty());
}

TEST(OpenAiClient, ApiKeyNeverAppearsInLogsOrErrors) {
  const std::string log_path = ::testing::TempDir() + "/openai_client_key.log";
  std::remove(log_path.c_str());
  util::set_log_file(log_path);
  util::set_log_level(util::LogLevel::debug);
  std::string all_messages;
  {
    OpenAiOptions co;
    co.verify_tls = false;  // logs a warning naming the URL
    Fixture f({}, co);
    expect_vectors(f.embed(k_inputs), k_inputs, 8);
  }
  for (double stand_in::StandInOptions::*p :
       {&stand_in::StandInOptions::p_500, &stand_in::StandInOptions::p_malformed,
        &stand_in::StandInOptions::p_reset}) {
    stand_in::StandInOptions so;
    so.*p = 1;
    Fixture f(so);
    const auto c = f.embed(k_inputs);
    ASSERT_FALSE(c.result);
    all_messages += c.result.error().error.message + "\n";
  }
  {
    // The server echoes a masked key; a key given in the URL must not leak either.
    stand_in::StandInOptions so;
    so.api_key = "sk-other-key-that-the-server-wants";
    Fixture f(so);
    const auto c = f.embed(k_inputs);
    ASSERT_FALSE(c.result);
    all_messages += c.result.error().error.message + "\n";
    util::log_error("{}", c.result.error().error.message);
  }
  util::set_log_file("");
  std::ifstream in(log_path);
  std::stringstream log;
  log << in.rdbuf();
  EXPECT_NE(log.str().find("TLS"), std::string::npos) << "the log file was not written";
  EXPECT_EQ(log.str().find(k_key), std::string::npos) << log.str();
  EXPECT_EQ(all_messages.find(k_key), std::string::npos) << all_messages;
  EXPECT_EQ(log.str().find("Bearer sk-"), std::string::npos);
}

}  // namespace
}  // namespace lens::provider
