// prepare() without threads, store or provider: routes, exact token counts, truncation,
// chunk pieces and the hash that decides whether an input changed.
#include <gtest/gtest.h>

#include <fmt/core.h>

#include "core/input_text.h"
#include "pipeline/prepare.h"

namespace lens::pipeline {
namespace {

class PrepareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tok = tokenizer::Tokenizer::load(tokenizer::Encoding::cl100k_base);
    ASSERT_TRUE(tok) << tok.error().message;
    tokenizer_ = *tok;
    options_.scope = {"local-hash", "local-hash-v1", false, false};
    options_.model = core::model_or_default("local-hash-v1");
  }

  static core::Exchange exchange(std::string user, std::string assistant = "") {
    core::Exchange ex;
    ex.user_message_id = "u1";
    ex.user_content = std::move(user);
    if (!assistant.empty()) {
      ex.assistant_message_id = "a1";
      ex.assistant_content = std::move(assistant);
    }
    ex.source_version = "2024-01-01T00:00:00Z";
    return ex;
  }
  static std::string words(int n) {
    std::string s;
    for (int i = 0; i < n; ++i)
      s += fmt::format("word{} ", i);
    return s;
  }
  PreparedInput run(core::Exchange ex) { return prepare(std::move(ex), options_, *tokenizer_); }

  std::shared_ptr<const tokenizer::Tokenizer> tokenizer_;
  RunOptions options_;
};

TEST_F(PrepareTest, NewExchangeIsOnePieceOfExactTokens) {
  const auto ex = exchange("What is photosynthesis?", "Plants turn light into sugar.");
  const std::string expected = core::build_input_text(ex);
  const PreparedInput in = run(ex);
  EXPECT_EQ(in.route, Route::work);
  EXPECT_FALSE(in.had_row);
  EXPECT_EQ(in.user_message_id, "u1");
  EXPECT_EQ(in.assistant_message_id, "a1");
  EXPECT_EQ(in.source_version, "2024-01-01T00:00:00Z");
  EXPECT_EQ(in.text, expected);
  EXPECT_EQ(in.sha256, util::sha256(expected));
  EXPECT_EQ(in.token_count, static_cast<std::int32_t>(tokenizer_->count(expected)));
  EXPECT_FALSE(in.truncated);
  EXPECT_FALSE(in.chunked);
  ASSERT_EQ(in.pieces.size(), 1u);
  EXPECT_EQ(in.piece_text(0), expected);
  EXPECT_EQ(in.pieces[0].tokens, in.token_count);
  const core::EmbeddingRow row = make_row(in, {1.0f, 0.0f});
  EXPECT_EQ(row.content_sha256, in.sha256);
  EXPECT_EQ(row.token_count, in.token_count);
  EXPECT_EQ(row.assistant_message_id, "a1");
  EXPECT_EQ(row.embedding.size(), 2u);
}

TEST_F(PrepareTest, BlankByUnicodeIsEmptyInputAndNothingIsSent) {
  // NBSP and an ideographic space: not blank to SQL's trim(), blank to Unicode.
  const PreparedInput in = run(exchange("\xC2\xA0\xE3\x80\x80", "an answer"));
  EXPECT_EQ(in.route, Route::empty_input);
  EXPECT_TRUE(in.text.empty());
  EXPECT_TRUE(in.pieces.empty());
  const core::Failure f = make_failure(in, core::FailureReason::empty_input, "blank");
  EXPECT_EQ(f.user_message_id, "u1");
  EXPECT_EQ(f.reason, core::FailureReason::empty_input);
  EXPECT_EQ(f.source_version, "2024-01-01T00:00:00Z");
  // Blank user content with a real answer is still blank: the question is what is embedded.
  EXPECT_EQ(run(exchange(" \t\n", "answer")).route, Route::empty_input);
  EXPECT_EQ(run(exchange("x")).route, Route::work);
}

TEST_F(PrepareTest, UnchangedHashIsATouchAndADifferentOneIsWork) {
  auto ex = exchange("same question", "same answer");
  ex.stored_sha256 = util::sha256(core::build_input_text(ex));
  const PreparedInput same = run(ex);
  EXPECT_EQ(same.route, Route::unchanged);
  EXPECT_TRUE(same.had_row);
  EXPECT_TRUE(same.pieces.empty());
  const core::RowTouch touch = make_touch(same);
  EXPECT_EQ(touch.user_message_id, "u1");
  EXPECT_EQ(touch.assistant_message_id, "a1");
  EXPECT_EQ(touch.source_version, "2024-01-01T00:00:00Z");

  ex.stored_sha256 = util::sha256("what was embedded before the edit");
  const PreparedInput stale = run(ex);
  EXPECT_EQ(stale.route, Route::work);
  EXPECT_TRUE(stale.had_row);
  EXPECT_EQ(stale.pieces.size(), 1u);
}

TEST_F(PrepareTest, ForceSendsAnUnchangedInput) {
  auto ex = exchange("same question");
  ex.stored_sha256 = util::sha256(core::build_input_text(ex));
  options_.scope.force = true;
  const PreparedInput in = run(ex);
  EXPECT_EQ(in.route, Route::work);
  EXPECT_TRUE(in.had_row);
  ASSERT_EQ(in.pieces.size(), 1u);
}

TEST_F(PrepareTest, TruncationKeepsAPrefixWithItsExactCount) {
  options_.model.max_input_tokens = 50;
  const std::string full = words(200);
  const PreparedInput in = run(exchange(full));
  EXPECT_EQ(in.route, Route::work);
  EXPECT_TRUE(in.truncated);
  EXPECT_FALSE(in.chunked);
  ASSERT_LT(in.text.size(), full.size());
  EXPECT_EQ(full.substr(0, in.text.size()), in.text);
  // The count is of the text as sent, and the text is as long as the limit allows.
  EXPECT_EQ(in.token_count, static_cast<std::int32_t>(tokenizer_->count(in.text)));
  EXPECT_LE(in.token_count, 50);
  EXPECT_GT(tokenizer_->count(std::string_view(full).substr(0, in.text.size() + 1)), 50u);
  EXPECT_EQ(in.sha256, util::sha256(in.text));
  ASSERT_EQ(in.pieces.size(), 1u);
  EXPECT_EQ(in.piece_text(0), in.text);
  EXPECT_EQ(in.pieces[0].tokens, in.token_count);

  // An input at the limit exactly is not cut.
  const auto at_limit = exchange(std::string(in.text));
  options_.model.max_input_tokens = in.token_count;
  const PreparedInput whole = run(at_limit);
  EXPECT_FALSE(whole.truncated);
  EXPECT_EQ(whole.text, in.text);
  EXPECT_EQ(whole.token_count, in.token_count);

  // The stored hash of the same truncation means unchanged.
  options_.model.max_input_tokens = 50;
  auto again = exchange(full);
  again.stored_sha256 = in.sha256;
  EXPECT_EQ(run(again).route, Route::unchanged);
}

TEST_F(PrepareTest, ChunkPiecesCoverTheWholeInputWithExactCounts) {
  options_.model.max_input_tokens = 40;
  options_.long_input = LongInput::chunk;
  const std::string full = words(100);
  const PreparedInput in = run(exchange(full));
  EXPECT_EQ(in.route, Route::work);
  EXPECT_TRUE(in.chunked);
  EXPECT_FALSE(in.truncated);
  EXPECT_EQ(in.text, full);
  EXPECT_EQ(in.token_count, static_cast<std::int32_t>(tokenizer_->count(full)));
  const auto expected = tokenizer_->chunk(full, 40, 0);
  ASSERT_GT(expected.size(), 1u);
  ASSERT_EQ(in.pieces.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(in.piece_text(i), expected[i]) << i;
    EXPECT_EQ(in.pieces[i].tokens, static_cast<std::int64_t>(tokenizer_->count(expected[i]))) << i;
    EXPECT_LE(in.pieces[i].tokens, 40) << i;
  }

  // The overlap is at most half the limit.
  options_.chunk_overlap_tokens = 100;
  const PreparedInput overlapped = run(exchange(full));
  const auto with_overlap = tokenizer_->chunk(full, 40, 20);
  ASSERT_EQ(overlapped.pieces.size(), with_overlap.size());
  for (std::size_t i = 0; i < with_overlap.size(); ++i)
    EXPECT_EQ(overlapped.piece_text(i), with_overlap[i]) << i;
}

TEST_F(PrepareTest, PiecesSurviveAMove) {
  // A short text lives inside the std::string (small-string buffer): views into it would
  // dangle after a move, the pieces' offsets do not.
  PreparedInput in = run(exchange("hi"));
  PreparedInput moved = std::move(in);
  ASSERT_EQ(moved.pieces.size(), 1u);
  EXPECT_EQ(moved.piece_text(0), "hi");
}

}  // namespace
}  // namespace lens::pipeline
