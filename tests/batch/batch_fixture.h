// The fixture of the batch e2e tests (issue 13): lens-embed run --batch-api through the
// binary against the stand-in's Batch API, on SQLite or on a PostgreSQL schema of the
// test's own (GetParam()), over a deterministic corpus (support/corpus.h).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/corpus.h"
#include "support/paths.h"
#include "support/pg.h"
#include "support/process.h"
#include "support/source_schema.h"
#include "support/sql.h"
#include "support/stand_in.h"
#include "verifier.h"

namespace lens::batch_test {

namespace test = lens::test;

inline constexpr const char* k_key = "sk-batch-test-key-0000";
inline constexpr const char* k_model = "text-embedding-3-small";

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class BatchE2E : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (pg()) {
      auto& server = test::PgServer::shared();
      ASSERT_TRUE(server.ok()) << server.error();
      scratch_ = std::make_unique<test::PgScratch>(server, "batch");
      ASSERT_TRUE(scratch_->ok()) << scratch_->error();
      target_ = scratch_->url();
    } else {
      target_ = "sqlite:" + (dir_ / "lens.db");
    }
    db_ = test::Db::open(target_);
    ASSERT_TRUE(db_);
    ASSERT_EQ(test::create_source_schema(*db_), "");
  }
  void TearDown() override {
    if (HasFailure()) dir_.keep();
  }
  bool pg() const { return GetParam() == "postgres"; }

  static stand_in::StandInOptions options() {
    stand_in::StandInOptions o;
    o.api_key = k_key;
    o.default_dimensions = 16;
    o.reject_marker = test::k_poison_marker;
    return o;
  }
  void start(stand_in::StandInOptions o = options()) {
    provider_ = std::make_unique<test::StandIn>(std::move(o));
    ASSERT_TRUE(provider_->ok());
  }
  // `exchanges` eligible exchanges (and the corpus's ineligible messages around them).
  void load(std::int64_t exchanges, double p_poison = 0) {
    test::CorpusOptions co;
    co.exchanges = exchanges;
    co.p_poison = p_poison;
    co.p_long = 0;
    const auto corpus = test::make_corpus(co);
    ASSERT_EQ(db_->insert(corpus.messages), "");
  }
  std::vector<std::string> sync_args(std::vector<std::string> extra = {}) const {
    std::vector<std::string> a = {"run", "--db", target_};
    for (auto& s : provider_->provider_args(k_model))
      a.push_back(s);
    a.insert(a.end(), {"--dimensions", dimensions_});
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  std::vector<std::string> args(std::vector<std::string> extra = {},
                                const std::string& batch_size = "8") const {
    auto a = sync_args({"--batch-api", "--batch-size", batch_size});
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  test::Env env() const {
    test::Env e;
    e.emplace("SUPERMIND_API_KEY", k_key);
    e.emplace("TMPDIR", dir_.path());  // input files of a PostgreSQL run are written here
    return e;
  }
  test::Output lens(const std::vector<std::string>& a) { return test::run_lens(a, dir_.path(), env()); }
  // Reruns the batch run until it exits 0 (at most `tries` times).
  int until_done(const std::vector<std::string>& a, int tries = 30) {
    int code = -1;
    for (int i = 0; i < tries && code != 0; ++i) {
      const auto r = lens(a);
      code = r.exit_code;
      if (code == 2) ADD_FAILURE() << r.err;
      if (code != 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return code;
  }
  long long count(const std::string& q) {
    const auto v = db_->scalar(q);
    EXPECT_TRUE(v) << db_->last_error() << "\n" << q;
    return v && !v->empty() ? std::stoll(*v) : -1;
  }
  std::string not_done() const { return pg() ? "NOT done" : "done = 0"; }
  long long open_batches() { return count("SELECT count(*) FROM embedding_batches WHERE " + not_done()); }
  long long rows() { return count("SELECT count(*) FROM message_embeddings"); }
  // User texts more than one message has: the stand-in bills by text, so each is billed
  // once per message that has it, which is not paying an item twice.
  long long shared_texts() {
    return count(
        "SELECT count(*) FROM (SELECT content FROM messages WHERE role = 'user' AND content IS NOT NULL "
        "AND content NOT IN ('', ' \t\n ') GROUP BY content HAVING count(*) > 1) t");
  }
  verify::VerifyReport verify() {
    verify::VerifyOptions v;
    v.db = target_;
    v.model = k_model;
    return verify::verify(v);
  }
  // The independent verifier and `lens-embed verify` both find every row right.
  void expect_verified() {
    const auto r = verify();
    EXPECT_TRUE(r.ok()) << r.to_json();
    EXPECT_EQ(r.missing, 0) << r.to_json();
    const auto v = lens({"verify", "--db", target_, "--provider", "supermind", "--model", k_model,
                         "--dimensions", dimensions_});
    EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  }
  // `replaced`: texts paid for whose message was edited meanwhile (their results discarded).
  void expect_paid_once(long long replaced = 0) {
    EXPECT_EQ(provider_->stat("billed_more_than_once"), shared_texts());
    EXPECT_EQ(provider_->stat("billed_batch_inputs") + provider_->stat("billed_sync_inputs"),
              rows() + replaced);
  }

  test::TempDir dir_{"batch-e2e"};
  std::unique_ptr<test::PgScratch> scratch_;
  std::string target_;
  std::unique_ptr<test::Db> db_;
  std::unique_ptr<test::StandIn> provider_;
  std::string dimensions_ = "16";  // --dimensions of every run (the stand-in's default too)
};

}  // namespace lens::batch_test
