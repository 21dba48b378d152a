// pgvector through the real binary: `init --index hnsw`, `run` and `search` on PGlite
// (PostgreSQL 18 in WASM with pgvector, tests/store/pglite), with vector(1536) and
// halfvec(3072) columns; the verifier reads every vector back and proves it.
// Each test starts a PGlite of its own: PGlite has one backend that every connection
// shares (SET, temporary tables, transactions), so two tests on one server would see
// each other's session.
#include <gtest/gtest.h>

#include <fmt/core.h>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "support/corpus.h"
#include "support/paths.h"
#include "support/process.h"
#include "support/source_schemas.h"
#include "support/sql.h"
#include "support/stand_in.h"
#include "verifier.h"

namespace lens::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* k_key = "sk-pgvector-test-key-77c1";
// An exchange of its own (a question without an answer: its input text is the question),
// to search for with its exact text.
constexpr const char* k_needle = "Which index answers a cosine search over halfvec columns?";

// PGlite started by tests/store/pglite/start.sh (which installs its npm packages on
// first use), stopped when this goes.
class Pglite {
 public:
  explicit Pglite(const std::string& dir) : port_file_(dir + "/pglite.port"), dir_(dir) {
    const Output o = run({script(), "start", port_file_}, dir_, {}, 170s);
    if (o.exit_code != 0) {
      error_ = fmt::format("start.sh start failed (exit {}): {}{}", o.exit_code, o.out, o.err);
      return;
    }
    const std::string port = slurp(port_file_);
    // PGlite ignores the user and database names, and has no SSL.
    url_ = fmt::format("postgresql://postgres@127.0.0.1:{}/postgres?sslmode=disable", port);
  }
  ~Pglite() { (void)run({script(), "stop", port_file_}, dir_, {}, 30s); }
  Pglite(const Pglite&) = delete;
  Pglite& operator=(const Pglite&) = delete;

  [[nodiscard]] bool ok() const { return !url_.empty(); }
  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] const std::string& url() const { return url_; }

 private:
  static std::string script() { return source_dir() + "/tests/store/pglite/start.sh"; }
  std::string port_file_, dir_, url_, error_;
};

class PgvectorE2E : public ::testing::Test {
 protected:
  // `dimensions`: what the stand-in answers when the request names none, as the real
  // model does (text-embedding-3-large: 3072).
  void start(int dimensions) {
    pglite_ = std::make_unique<Pglite>(dir_.path());
    ASSERT_TRUE(pglite_->ok()) << pglite_->error();
    stand_in::StandInOptions so;
    so.api_key = k_key;
    so.default_dimensions = dimensions;
    stand_in_ = std::make_unique<StandIn>(so);
    ASSERT_TRUE(stand_in_->ok());
    admin_ = Db::open(pglite_->url());
    ASSERT_TRUE(admin_);
  }

  void TearDown() override {
    if (HasFailure()) {
      dir_.keep();
      std::fprintf(stderr, "kept %s (pglite.port.log is the server's output)\n", dir_.path().c_str());
    }
  }

  // The default source schema (tests/support's fixture) with its corpus and the needle,
  // in INSERT statements (PGlite cannot take COPY FROM STDIN: it hangs). Returns how many
  // exchanges a correct run embeds.
  std::int64_t load_corpus(int conversations) {
    const schemas::Fixture f{schemas::Schema::default_schema, schemas::Dialect::postgres};
    auto corpus = schemas::make_corpus(f, {.conversations = conversations, .seed = 1536});
    schemas::Message needle;
    needle.id = uuid_from(900'001);
    needle.conversation_id = uuid_from(900'000);
    needle.role = "user";
    needle.content = k_needle;
    needle.created_at = "2030-01-01T00:00:00.000Z";
    corpus.messages.push_back(needle);
    EXPECT_EQ(schemas::load(*admin_, f, corpus.messages), "");
    return static_cast<std::int64_t>(corpus.expected.size()) + 1;
  }

  Output lens(std::vector<std::string> args, bool with_provider, const std::string& model) {
    if (with_provider) {
      for (auto& a : stand_in_->provider_args(model))
        args.push_back(a);
    }
    // LENS_PG_COPY=off: the store stages rows with INSERTs, as PGlite needs.
    return run_lens(args, dir_ / "work", {{"SUPERMIND_API_KEY", k_key}, {"LENS_PG_COPY", "off"}}, 120s);
  }

  std::string scalar(const std::string& sql) {
    const auto v = admin_->scalar(sql);
    EXPECT_TRUE(v) << admin_->last_error() << "\n" << sql;
    return v.value_or("<error>");
  }

  // init (pgvector column of `dimensions`, HNSW), run, verify every row, search.
  void end_to_end(const std::string& model, int dimensions, const std::string& column, const std::string& ops,
                  int conversations) {
    auto t0 = std::chrono::steady_clock::now();
    auto lap = [&](const char* what) {
      const auto now = std::chrono::steady_clock::now();
      std::printf(
          "%s: %lld ms\n", what,
          static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(now - t0).count()));
      t0 = now;
    };
    start(dimensions);
    lap("pglite and stand-in started");
    if (HasFatalFailure()) return;
    const std::int64_t eligible = load_corpus(conversations);
    std::printf("%lld exchanges\n", static_cast<long long>(eligible));
    lap("corpus loaded");
    const std::string db = pglite_->url();

    const Output init = lens(
        {"init", "--db", db, "--provider", "supermind", "--model", model, "--index", "hnsw"}, false, model);
    lap("init");
    ASSERT_EQ(init.exit_code, 0) << init.out << init.err;
    EXPECT_EQ(scalar("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                     "'message_embeddings'::regclass AND attname = 'embedding'"),
              column);
    const std::string indexdef =
        scalar("SELECT indexdef FROM pg_indexes WHERE indexname = 'message_embeddings_hnsw'");
    EXPECT_NE(indexdef.find("USING hnsw (embedding " + ops + ")"), std::string::npos) << indexdef;

    const Output run = lens({"run", "--db", db, "--quiet", "--batch-size", "32"}, true, model);
    lap("run");
    ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
    EXPECT_EQ(std::stoll(scalar("SELECT count(*) FROM message_embeddings")), eligible);
    EXPECT_EQ(scalar("SELECT count(DISTINCT dimensions) || ':' || min(dimensions) FROM message_embeddings"),
              "1:" + std::to_string(dimensions));

    verify::VerifyOptions vo;
    vo.db = db;
    vo.provider = "supermind";
    vo.model = model;
    const auto report = verify::verify(vo);
    lap("verify");
    EXPECT_TRUE(report.ok()) << report.to_json();
    EXPECT_EQ(report.rows, eligible);
    EXPECT_EQ(report.rows_ok, eligible);
    EXPECT_EQ(report.failures, 0);

    // The HNSW index can answer a nearest-neighbour query on this column (the planner
    // prefers a scan of so few rows, so it is told not to, in a transaction of ours).
    std::string probe = "[";
    for (int i = 0; i < dimensions; ++i)
      probe += i ? ",0.5" : "0.5";
    probe += "]";
    auto plan = admin_->query(
        "BEGIN; SET LOCAL enable_seqscan = off; EXPLAIN SELECT user_message_id FROM message_embeddings "
        "ORDER BY embedding <=> '" +
        probe + "'::" + column + " LIMIT 3");
    EXPECT_TRUE(plan) << admin_->last_error();
    std::string plan_text;
    for (const auto& row : plan.value_or(std::vector<Db::Row>{}))
      plan_text += row.at(0).value_or("") + "\n";
    EXPECT_EQ(admin_->exec("COMMIT"), "");
    EXPECT_NE(plan_text.find("message_embeddings_hnsw"), std::string::npos) << plan_text;

    // search embeds the needle's exact text: its own row is the nearest, at similarity 1
    // (halfvec: within float16 rounding).
    const Output found = lens({"search", "--db", db, "--json", "-k", "3", k_needle}, true, model);
    lap("search");
    ASSERT_EQ(found.exit_code, 0) << found.out << found.err;
    const auto j = nlohmann::json::parse(found.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << found.out;
    ASSERT_EQ(j["hits"].size(), 3u) << found.out;
    EXPECT_EQ(j["hits"][0]["user_message_id"], uuid_from(900'001)) << found.out;
    EXPECT_GT(j["hits"][0]["score"].get<double>(), 0.999) << found.out;
    EXPECT_LT(j["hits"][1]["score"].get<double>(), 0.9) << found.out;
    // It went through the HNSW index, and says so (the planner alone scans so few rows).
    EXPECT_EQ(j["method"], "HNSW index message_embeddings_hnsw (approximate)") << found.out;
    const Output text = lens({"search", "--db", db, "-k", "1", k_needle}, true, model);
    EXPECT_EQ(text.exit_code, 0) << text.out << text.err;
    EXPECT_NE(text.err.find("search: ranked by HNSW index message_embeddings_hnsw (approximate)"),
              std::string::npos)
        << text.err;
  }

  TempDir dir_{"pgvector"};
  std::unique_ptr<Pglite> pglite_;
  std::unique_ptr<StandIn> stand_in_;
  std::unique_ptr<Db> admin_;
};

TEST_F(PgvectorE2E, Vector1536WithHnsw) {
  end_to_end("text-embedding-3-small", 1536, "vector(1536)", "vector_cosine_ops", 40);
}

// Over 2000 dimensions pgvector's HNSW needs halfvec; the verifier proves each value is
// the float16 nearest to the provider's float32. Fewer exchanges: PGlite's WASM build
// converts float16 in software, and its HNSW inserts of halfvec(3072) grow slow fast
// (120 rows took 25 s to write, 64 take 4 s).
TEST_F(PgvectorE2E, Halfvec3072WithHnsw) {
  end_to_end("text-embedding-3-large", 3072, "halfvec(3072)", "halfvec_cosine_ops", 20);
}

}  // namespace
}  // namespace lens::test
