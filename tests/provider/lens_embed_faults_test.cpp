// Fault tests through the real lens-embed binary against the stand-in provider: for
// every fault, the run either retries and embeds (vectors checked bit for bit) or
// records the right failure reason; the API key appears in no output and no log line.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "core/input_text.h"
#include "stand_in_vector.h"
#include "support/process.h"
#include "support/sql.h"
#include "support/stand_in.h"

namespace lens::provider {
namespace {

constexpr const char* k_key = "sk-e2e-4b1d9a7c3e5f8a2b6c0d";
constexpr int k_dims = 16;
constexpr int k_exchanges = 30;

struct Output {
  int exit_code = -1;
  std::string out, err, log;
  // A whole-number field of the --json summary on stdout; -1 when absent.
  [[nodiscard]] long long json_field(const std::string& name) const {
    const auto at = out.find("\"" + name + "\":");
    return at == std::string::npos ? -1 : std::stoll(out.substr(at + name.size() + 3));
  }
};

class LensEmbedFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    db_path_ = dir_ / "lens.db";
    auto db = test::Db::open("sqlite:" + db_path_);
    ASSERT_TRUE(db);
    auto exec = [&](const std::string& sql) { ASSERT_EQ(db->exec(sql), "") << sql; };
    exec(
        "CREATE TABLE conversations (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, title TEXT, created_at "
        "TEXT NOT NULL);"
        "CREATE TABLE messages (id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, role TEXT NOT NULL, "
        "content TEXT,"
        " created_at TEXT NOT NULL, updated_at TEXT);"
        "INSERT INTO conversations VALUES ('c0', 'u0', 't', '2024-01-01T00:00:00Z');");
    for (int i = 0; i < k_exchanges; ++i) {
      char ts_user[32];
      std::snprintf(ts_user, sizeof ts_user, "2024-01-01T00:%02d:%02dZ", i / 60, i % 60);
      const std::string user = "u" + std::to_string(i);
      // Answers come after all questions, so only the last question has one.
      std::string content =
          "question " + std::to_string(i) + " about \"topic\" \xC3\xA9t\xC3\xA9 \xF0\x9F\x98\x80";
      if (i == 7) content = "this one carries the POISON marker";
      exec("INSERT INTO messages VALUES ('" + user + "', 'c0', 'user', '" + content + "', '" + ts_user +
           "', NULL);");
      texts_[user] = content;
    }
    exec(
        "INSERT INTO messages VALUES ('a_last', 'c0', 'assistant', 'the answer', '2024-01-01T02:00:00Z', "
        "NULL);");
    core::Exchange last;
    last.user_content = texts_["u" + std::to_string(k_exchanges - 1)];
    last.assistant_message_id = "a_last";
    last.assistant_content = "the answer";
    texts_["u" + std::to_string(k_exchanges - 1)] = core::build_input_text(last);
  }
  void TearDown() override {
    if (HasFailure()) dir_.keep();
  }

  // Starts the stand-in (key check on), runs lens-embed run against it, stops the server.
  Output run(stand_in::StandInOptions so, std::vector<std::string> extra_args = {}, std::string key = k_key) {
    if (so.api_key.empty()) so.api_key = k_key;
    test::StandIn server(so);
    EXPECT_TRUE(server.ok());
    std::vector<std::string> args = {"run", "--db", "sqlite:" + db_path_};
    for (const auto& a : server.provider_args("text-embedding-3-small"))
      args.push_back(a);
    args.insert(args.end(), {"--dimensions", std::to_string(k_dims), "--json", "--verbose", "--log-file",
                             dir_ / "run.log"});
    // Defaults unless the test gives its own value (the cli refuses a repeated option).
    for (const auto& [flag, value] :
         {std::pair<std::string, std::string>{"--batch-size", "4"}, {"--max-attempts", "6"}}) {
      if (std::find(extra_args.begin(), extra_args.end(), flag) == extra_args.end()) {
        args.push_back(flag);
        args.push_back(value);
      }
    }
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    const auto r = test::run_lens(args, dir_.path(), {{"SUPERMIND_API_KEY", key}});
    Output o{r.exit_code, r.out, r.err, test::slurp(dir_ / "run.log")};
    stats_ = server.stats_json();
    return o;
  }

  // user_message_id -> embedding; failures: user_message_id -> reason.
  std::map<std::string, std::vector<float>> rows() {
    std::map<std::string, std::vector<float>> out;
    auto all = test::Db::open("sqlite:" + db_path_)
                   ->query("SELECT user_message_id, embedding FROM message_embeddings");
    EXPECT_TRUE(all);
    for (const auto& row : all.value_or(std::vector<test::Db::Row>{})) {
      const std::string& blob = row[1].value();
      std::vector<float> v(blob.size() / 4);
      std::memcpy(v.data(), blob.data(), v.size() * 4);
      out[row[0].value()] = std::move(v);
    }
    return out;
  }
  std::map<std::string, std::string> failures(std::string* details = nullptr) {
    std::map<std::string, std::string> out;
    auto all = test::Db::open("sqlite:" + db_path_)
                   ->query("SELECT user_message_id, reason, coalesce(detail, '') FROM embedding_failures");
    EXPECT_TRUE(all);
    for (const auto& row : all.value_or(std::vector<test::Db::Row>{})) {
      out[row[0].value()] = row[1].value();
      if (details) *details += row[2].value() + "\n";
    }
    return out;
  }
  std::string runs_table() {
    return test::Db::open("sqlite:" + db_path_)
        ->dump("SELECT coalesce(arguments, '') || ' ' || coalesce(worker, '') FROM embedding_runs");
  }

  // Every exchange embedded with exactly the stand-in's vector, except `missing`.
  void expect_all_embedded(const std::set<std::string>& missing = {}) {
    const auto got = rows();
    for (const auto& [id, text] : texts_) {
      if (missing.contains(id)) {
        EXPECT_FALSE(got.contains(id)) << id;
        continue;
      }
      auto it = got.find(id);
      ASSERT_NE(it, got.end()) << "not embedded: " << id << "\nstand-in: " << stats_;
      std::vector<float> want(k_dims);
      stand_in::stand_in_vector(text, want);
      EXPECT_EQ(it->second, want) << id;
    }
  }

  static stand_in::StandInOptions poison() {
    stand_in::StandInOptions so;
    so.reject_marker = "POISON";
    return so;
  }
  static std::int64_t stat(const std::string& json, const std::string& name) {
    return test::stat_counter(json, name);
  }

  test::TempDir dir_{"faults"};
  std::string db_path_;
  std::map<std::string, std::string> texts_;
  std::string stats_;
};

#define EXPECT_EXIT_CODE(o, code) \
  EXPECT_EQ((o).exit_code, code) << "stdout:\n" << (o).out << "\nstderr:\n" << (o).err

TEST_F(LensEmbedFaults, CleanRunWithShuffledDataEmbedsEverythingExactly) {
  auto so = poison();
  so.shuffle = true;
  const Output o = run(so);
  EXPECT_EXIT_CODE(o, 0);
  expect_all_embedded({"u7"});
  EXPECT_EQ(failures(), (std::map<std::string, std::string>{{"u7", "context_length"}}));
}

TEST_F(LensEmbedFaults, ContextLength400IsolatesTheOneBadInput) {
  const Output o = run(poison(), {"--batch-size", "16"});
  EXPECT_EXIT_CODE(o, 0);
  std::string details;
  EXPECT_EQ(failures(&details), (std::map<std::string, std::string>{{"u7", "context_length"}}));
  EXPECT_NE(details.find("maximum context length"), std::string::npos) << details;
  expect_all_embedded({"u7"});
  // Bisection: the 16-input batch with u7 was split until u7 stood alone.
  EXPECT_GE(stat(stats_, "status_400_context"), 4);
}

// Exactly 3 faults in all (fault_limit) against 6 attempts per request: no request can
// run out of attempts on faults, whatever the order the requests meet them in. The
// 2 s timeout ends a hang (5 s) and is far above an ordinary answer on a busy machine.
#define FAULT_RETRIED_AND_EMBEDDED(name, field, counter) \
  TEST_F(LensEmbedFaults, name) {                        \
    auto so = poison();                                  \
    so.field = 1;                                        \
    so.fault_limit = 3;                                  \
    so.hang_ms = 5000;                                   \
    const Output o = run(so, {"--timeout", "2"});        \
    EXPECT_EXIT_CODE(o, 0);                              \
    EXPECT_EQ(stat(stats_, counter), 3) << stats_;       \
    expect_all_embedded({"u7"});                         \
    EXPECT_EQ(failures().size(), 1u);                    \
  }

FAULT_RETRIED_AND_EMBEDDED(Status500IsRetriedAndEmbedded, p_500, "fault_status_500")
FAULT_RETRIED_AND_EMBEDDED(Status502IsRetriedAndEmbedded, p_502, "fault_status_502")
FAULT_RETRIED_AND_EMBEDDED(Status503IsRetriedAndEmbedded, p_503, "fault_status_503")
FAULT_RETRIED_AND_EMBEDDED(ConnectionResetIsRetriedAndEmbedded, p_reset, "fault_reset")
FAULT_RETRIED_AND_EMBEDDED(HangTimesOutAndIsRetried, p_hang, "fault_hang")
FAULT_RETRIED_AND_EMBEDDED(MalformedJsonIsRetriedAndEmbedded, p_malformed, "fault_malformed")
FAULT_RETRIED_AND_EMBEDDED(TruncatedBodyIsRetriedAndEmbedded, p_truncated, "fault_truncated")
FAULT_RETRIED_AND_EMBEDDED(ShortResponseIsRetriedAndEmbedded, p_short, "fault_short")
FAULT_RETRIED_AND_EMBEDDED(NanValueIsRetriedAndEmbedded, p_nan, "fault_nan")
FAULT_RETRIED_AND_EMBEDDED(WrongDimensionsAreRetriedAndEmbedded, p_bad_dims, "fault_bad_dims")
FAULT_RETRIED_AND_EMBEDDED(Injected429IsRetriedAndEmbedded, p_429, "fault_injected_429")

// Ten 429s against two attempts per request: with 429s counted as attempts, some request
// meets two of them and its inputs end as retries_exhausted. They are not attempts.
TEST_F(LensEmbedFaults, RateLimitAnswersNeverUseUpAttempts) {
  auto so = poison();
  so.p_429 = 1;
  so.fault_limit = 10;
  const Output o = run(so, {"--max-attempts", "2", "--batch-size", "4"});
  EXPECT_EXIT_CODE(o, 0);
  EXPECT_EQ(stat(stats_, "fault_injected_429"), 10) << stats_;
  expect_all_embedded({"u7"});
  EXPECT_EQ(failures().size(), 1u);
}

TEST_F(LensEmbedFaults, PersistentInvalidResponsesAreRecordedAsInvalidResponse) {
  auto so = poison();
  so.p_nan = 1;
  const Output o = run(so, {"--max-attempts", "2", "--limit", "8"});
  // invalid_response is transient: the run leaves work undone (later runs retry it).
  EXPECT_EXIT_CODE(o, 1);
  EXPECT_GT(o.json_field("transient_failures_left"), 0) << o.out;
  const auto f = failures();
  EXPECT_EQ(rows().size(), 0u);
  ASSERT_FALSE(f.empty());
  for (const auto& [id, reason] : f) {
    if (id != "u7") {
      EXPECT_EQ(reason, "invalid_response") << id;
    }
  }
}

TEST_F(LensEmbedFaults, PersistentServerErrorsTripTheBreakerAndRecordNothing) {
  // No poisoned input: its 400 would be an answer, and a 503 that comes after an answer
  // counts against its request (the provider was there), which depends on timing.
  stand_in::StandInOptions so;
  so.p_503 = 1;
  const Output o = run(so, {"--max-attempts", "2", "--limit", "8", "--unavailable-after", "2"});
  // A provider that fails every request is unavailable: the run stops (exit 1) and blames
  // no input, however many attempts --max-attempts allows.
  EXPECT_EXIT_CODE(o, 1);
  EXPECT_EQ(rows().size(), 0u);
  EXPECT_TRUE(failures().empty());
  // One line names the cause, the model and the setting.
  EXPECT_NE(o.err.find("provider unavailable: HTTP 503 (model text-embedding-3-small)"), std::string::npos)
      << o.err;
  EXPECT_NE(o.err.find("--unavailable-after"), std::string::npos) << o.err;
  EXPECT_GE(stat(stats_, "fault_status_503"), 3) << stats_;
}

// The rate-limit tests keep the default 6 attempts: a 429 is not a failed attempt
// (docs/OPERATIONS.md, RateLimitAnswersNeverUseUpAttempts above), so however many a request
// meets (that depends on scheduling) it ends embedded.

TEST_F(LensEmbedFaults, RpmLimitIsRespectedWithoutFailures) {
  auto so = poison();
  so.rpm = 300;            // 5 requests per second; the client is told 10x more
  so.burst_seconds = 0.2;  // a bucket of one request: concurrent requests meet 429s
  const Output o = run(so, {"--rpm", "3000", "--batch-size", "2"});
  EXPECT_EXIT_CODE(o, 0);
  // Whether 429s happen depends on timing (the client adopts the server's limit from
  // the first answer's headers); the outcome may not: everything embedded, no failure.
  EXPECT_GT(stat(stats_, "admitted_requests"), 0) << stats_;
  expect_all_embedded({"u7"});
  EXPECT_EQ(failures().size(), 1u) << stats_;
}

TEST_F(LensEmbedFaults, TpmLimitIsRespectedWithoutFailures) {
  auto so = poison();
  so.tpm = 3000;  // 50 tokens per second; a 2-input request is ~18 tokens
  so.burst_seconds = 0.2;
  so.retry_after_headers = true;
  const Output o = run(so, {"--tpm", "100000", "--batch-size", "2"});
  EXPECT_EXIT_CODE(o, 0);
  expect_all_embedded({"u7"});
  EXPECT_EQ(failures().size(), 1u) << stats_;
}

TEST_F(LensEmbedFaults, ServerWithoutBase64GetsFloats) {
  auto so = poison();
  so.reject_base64 = true;
  const Output o = run(so);
  EXPECT_EXIT_CODE(o, 0);
  expect_all_embedded({"u7"});
}

TEST_F(LensEmbedFaults, InsufficientQuotaStopsTheRunWithAClearMessage) {
  auto so = poison();
  so.quota_exhausted = true;
  const Output o = run(so);
  EXPECT_EQ(o.exit_code, 1) << o.err;
  EXPECT_NE((o.out + o.err).find("quota"), std::string::npos) << o.out << o.err;
  EXPECT_EQ(rows().size(), 0u);
  EXPECT_EQ(failures().size(), 0u);  // nothing is the inputs' fault
}

TEST_F(LensEmbedFaults, WrongKeyStopsTheRunAsAConfigurationError) {
  const Output o = run(poison(), {}, "sk-wrong-9c8b7a6f5e4d3c2b1a");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE((o.out + o.err).find("API key"), std::string::npos) << o.out << o.err;
  EXPECT_EQ((o.out + o.err + o.log).find("sk-wrong-9c8b7a6f5e4d3c2b1a"), std::string::npos);
  EXPECT_EQ(rows().size(), 0u);
  EXPECT_EQ(failures().size(), 0u);
  EXPECT_EQ(stat(stats_, "status_401"), stat(stats_, "requests"));
}

TEST_F(LensEmbedFaults, UnknownModelStopsTheRunAsAConfigurationError) {
  auto so = poison();
  so.models = "text-embedding-3-large";
  const Output o = run(so);
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE((o.out + o.err).find("404"), std::string::npos) << o.out << o.err;
  EXPECT_EQ(rows().size(), 0u);
  EXPECT_EQ(failures().size(), 0u);
}

// A gateway that serves another model under the name asked for answers vectors of the
// wrong size in every answer: after a few (one could be a broken answer) a configuration error,
// and nothing written: never rows of a size the (provider, model) does not have.
TEST_F(LensEmbedFaults, VectorsOfTheWrongSizeStopTheRunAsAConfigurationError) {
  stand_in::StandInOptions so;  // no poisoned input: its 400 would be recorded
  so.answer_dimensions = 768;   // the run asks for k_dims
  const Output o = run(so);
  EXPECT_EQ(o.exit_code, 2) << o.err;
  EXPECT_NE(o.err.find("the provider answered vectors of 768 dimensions where 16 were expected"),
            std::string::npos)
      << o.err;
  EXPECT_EQ(rows().size(), 0u);
  EXPECT_EQ(failures().size(), 0u);
}

TEST_F(LensEmbedFaults, ApiKeyAppearsInNoOutputNoLogLineAndNoTable) {
  auto so = poison();
  so.p_500 = 0.2;
  so.p_malformed = 0.2;
  so.p_reset = 0.1;
  so.fault_limit = 6;
  so.retry_after_headers = true;
  // More attempts than faults in all: no request runs out of them, in any order.
  Output o = run(so, {"--insecure", "--max-attempts", "7"});
  EXPECT_EXIT_CODE(o, 0);
  std::string details;
  failures(&details);
  std::string everything = o.out + o.err + o.log + details + runs_table();
  EXPECT_FALSE(o.log.empty());
  // A refused key (echoed back masked by the server) must not leak either.
  so = poison();
  so.api_key = "sk-the-server-wants-another-key";
  o = run(so);
  everything += o.out + o.err + o.log + runs_table();
  EXPECT_EQ(everything.find(k_key), std::string::npos) << everything;
  EXPECT_EQ(everything.find(std::string(k_key).substr(3)), std::string::npos);
}

}  // namespace
}  // namespace lens::provider
