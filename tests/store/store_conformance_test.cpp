// The Store contract, run against every backend (SQLite, PostgreSQL, PGlite+pgvector):
// exchange pairing, keyset paging, upserts, staleness, failures, runs, search.
#include <gtest/gtest.h>

#include <fmt/core.h>
#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "store_backends.h"
#include "util/sha256.h"

namespace lens::store::test {
namespace {

constexpr const char* k_provider = "test-provider";
constexpr const char* k_model = "m4";

std::string quote(const std::optional<std::string>& s) {
  if (!s) return "NULL";
  std::string out = "'";
  for (char c : *s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

std::vector<float> vector_for(const std::string& id, float salt = 0) {
  const float n = static_cast<float>(std::hash<std::string>{}(id) % 1000);
  return {n / 7.0f + salt, 1.0f / (n + 1.0f), -0.25f, 3.0e-3f};
}

class StoreTest : public BackendTest {
 protected:
  void conversation(int c) {
    backend_->exec(fmt::format(
        "INSERT INTO conversations (id, user_id, title, created_at) VALUES ('{}', '{}', 't', '{}')", uid(c),
        uid(999999), at(0)));
  }
  void message(int id, int conv, const std::string& role, const std::optional<std::string>& content,
               const std::string& created_at, const std::optional<std::string>& updated_at = std::nullopt) {
    backend_->exec(
        fmt::format("INSERT INTO messages (id, conversation_id, role, content, created_at, updated_at) "
                    "VALUES ('{}', '{}', '{}', "
                    "{}, '{}', {})",
                    uid(id), uid(conv), role, quote(content), created_at, quote(updated_at)));
  }

  WorkScope scope(bool force = false, bool retry = false) const {
    WorkScope s;
    s.provider = k_provider;
    s.model = k_model;
    s.force = force;
    s.only_failures = retry;
    return s;
  }

  std::vector<core::Exchange> all_pending(Store& store, const WorkScope& s, std::size_t page_size = 1000,
                                          int* pages = nullptr) {
    std::vector<core::Exchange> out;
    PendingCursor cursor;
    for (int guard = 0; guard < 100000; ++guard) {
      auto page = store.next_pending(s, cursor, page_size);
      EXPECT_TRUE(page) << (page ? "" : page.error().message);
      if (!page) break;
      EXPECT_LE(page->items.size(), page_size);
      if (pages) ++*pages;
      for (auto& e : page->items)
        out.push_back(std::move(e));
      if (page->exhausted) break;
    }
    return out;
  }

  static std::vector<std::string> ids(const std::vector<core::Exchange>& xs) {
    std::vector<std::string> out;
    for (const auto& x : xs)
      out.push_back(x.user_message_id);
    return out;
  }

  static std::string input_of(const core::Exchange& x) { return x.user_content + "\n" + x.assistant_content; }

  WriteBatch batch_for(const std::vector<core::Exchange>& xs, float salt = 0) {
    WriteBatch b;
    b.provider = k_provider;
    b.model = k_model;
    for (const auto& x : xs) {
      core::EmbeddingRow row;
      row.user_message_id = x.user_message_id;
      row.assistant_message_id = x.assistant_message_id;
      row.content_sha256 = util::sha256(input_of(x));
      row.token_count = static_cast<std::int32_t>(x.user_content.size());
      row.source_version = x.source_version;
      row.embedding = vector_for(x.user_message_id, salt);
      b.rows.push_back(std::move(row));
    }
    return b;
  }

  void write(Store& store, const WriteBatch& b) {
    auto s = store.write_batch(b);
    ASSERT_TRUE(s) << s.error().message;
  }

  std::int64_t row_count() {
    return std::stoll(backend_->scalar(
        fmt::format("SELECT count(*) FROM message_embeddings WHERE provider = '{}' AND model = '{}'",
                    k_provider, k_model)));
  }

  // One conversation per exchange (users 1000+i, answers 5000+i); user created_at ties in pairs.
  void simple_corpus(int n) {
    for (int i = 0; i < n; ++i) {
      conversation(10 + i);
      message(1000 + i, 10 + i, "user", fmt::format("question {}", i), at(10 + i / 2, 0));
      message(5000 + i, 10 + i, "assistant", fmt::format("answer {}", i), at(10 + i / 2, 1 + (i % 2) * 2));
    }
  }
};

TEST_P(StoreTest, MigrateIsIdempotent) {
  ASSERT_TRUE(store_->migrate());
  auto again = open();
  ASSERT_TRUE(again);
  auto m = again->migrate();
  EXPECT_TRUE(m) << (m ? "" : m.error().message);
}

TEST_P(StoreTest, PairsEachUserMessageWithItsAnswer) {
  conversation(1);
  conversation(2);
  message(1, 1, "user", "first question", at(1));
  message(2, 1, "system", "system note", at(2));
  message(3, 1, "assistant", "first answer", at(3));
  message(4, 1, "user", "unanswered: a user message follows", at(4));
  message(5, 1, "tool", "tool output", at(5));
  message(6, 1, "user", "third question", at(6));
  message(7, 1, "assistant", "third answer", at(7));
  message(8, 1, "assistant", "second assistant message, not an answer of its own", at(8));
  message(9, 1, "user", std::nullopt, at(9));
  message(10, 1, "user", " \t\n ", at(10));
  message(11, 1, "user", "", at(11));
  message(12, 2, "user", "other conversation, last message", at(3, 500));
  message(13, 1, "user", "last, no answer yet", at(12));

  const auto got = all_pending(*store_, scope());
  ASSERT_EQ(ids(got), (std::vector<std::string>{uid(1), uid(12), uid(4), uid(6), uid(13)}));
  EXPECT_EQ(got[0].assistant_message_id, uid(3));
  EXPECT_EQ(got[0].assistant_content, "first answer");
  EXPECT_EQ(got[0].user_content, "first question");
  EXPECT_FALSE(got[1].assistant_message_id);
  EXPECT_FALSE(got[2].assistant_message_id);
  EXPECT_EQ(got[3].assistant_message_id, uid(7));
  EXPECT_FALSE(got[4].assistant_message_id);
  for (const auto& x : got) {
    EXPECT_FALSE(x.stored_sha256);
    EXPECT_FALSE(x.source_version.empty());
  }
  auto n = store_->count_pending(scope());
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 5);
}

TEST_P(StoreTest, KeysetPagesCoverEverythingOnceInOrder) {
  conversation(1);
  // Ties on created_at are broken by id; microseconds must survive the cursor round trip.
  std::vector<std::string> expected;
  for (int i = 0; i < 47; ++i) {
    message(100 + i, 1, "user", fmt::format("q{}", i), at(20 + i / 3, (i % 3 == 2) ? 1 : 0));
  }
  std::vector<std::pair<std::string, std::string>> keys;
  for (int i = 0; i < 47; ++i)
    keys.emplace_back(at(20 + i / 3, (i % 3 == 2) ? 1 : 0), uid(100 + i));
  std::sort(keys.begin(), keys.end());
  for (const auto& k : keys)
    expected.push_back(k.second);

  int pages = 0;
  const auto got = all_pending(*store_, scope(), 5, &pages);
  EXPECT_EQ(ids(got), expected);
  EXPECT_GE(pages, 10);
  EXPECT_LE(pages, 11);
}

TEST_P(StoreTest, PagesAreBoundedByWindowNotByResult) {
  simple_corpus(30);
  auto first = all_pending(*store_, scope());
  first.resize(20);
  write(*store_, batch_for(first));
  // The first 4 windows of 5 are all done: they come back empty but not exhausted.
  PendingCursor cursor;
  auto page = store_->next_pending(scope(), cursor, 5);
  ASSERT_TRUE(page);
  EXPECT_TRUE(page->items.empty());
  EXPECT_FALSE(page->exhausted);
  EXPECT_TRUE(cursor.started);
  const auto rest = all_pending(*store_, scope(), 5);
  EXPECT_EQ(rest.size(), 10u);
}

TEST_P(StoreTest, WrittenRowsAreDoneAndUpsertsNeverDuplicate) {
  simple_corpus(12);
  const auto pending = all_pending(*store_, scope());
  ASSERT_EQ(pending.size(), 12u);
  auto writer = open();
  write(*writer, batch_for(pending));
  EXPECT_EQ(row_count(), 12);
  EXPECT_TRUE(all_pending(*store_, scope()).empty());
  auto n = store_->count_pending(scope());
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0);
  // Redoing a batch (unknown commit outcome) and a batch repeating an id: still one row each.
  write(*writer, batch_for(pending, 1.0f));
  auto twice = batch_for({pending[0], pending[0]}, 2.0f);
  write(*writer, twice);
  EXPECT_EQ(row_count(), 12);
  EXPECT_EQ(backend_->read_embedding(k_provider, k_model, pending[0].user_message_id),
            vector_for(pending[0].user_message_id, 2.0f));
  EXPECT_EQ(backend_->read_embedding(k_provider, k_model, pending[1].user_message_id),
            vector_for(pending[1].user_message_id, 1.0f));
  // Another model is independent.
  WorkScope other = scope();
  other.model = "other-model";
  EXPECT_EQ(all_pending(*store_, other).size(), 12u);
}

TEST_P(StoreTest, VectorsRoundTripExactly) {
  conversation(1);
  message(1, 1, "user", "q", at(1));
  const auto pending = all_pending(*store_, scope());
  ASSERT_EQ(pending.size(), 1u);
  auto b = batch_for(pending);
  b.rows[0].embedding = {0.1f, -1.0e-38f, 3.4028235e38f, 1.0e-45f};
  write(*store_, b);
  EXPECT_EQ(backend_->read_embedding(k_provider, k_model, uid(1)), b.rows[0].embedding);
}

TEST_P(StoreTest, UnicodeContentRoundTrips) {
  conversation(1);
  const std::string content = "naïve café — 日本語 🚀 \"quotes\" 'single' back\\slash {braces}";
  message(1, 1, "user", content, at(1));
  message(2, 1, "assistant", "ответ ✓", at(2));
  const auto got = all_pending(*store_, scope());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].user_content, content);
  EXPECT_EQ(got[0].assistant_content, "ответ ✓");
}

TEST_P(StoreTest, EditedExchangesComeBackWithTheirStoredHash) {
  simple_corpus(4);
  const auto pending = all_pending(*store_, scope());
  const auto b = batch_for(pending);
  write(*store_, b);
  ASSERT_TRUE(all_pending(*store_, scope()).empty());

  // An edit of the user message, and an edit of an answer.
  backend_->exec(
      fmt::format("UPDATE messages SET content = 'edited question', updated_at = '{}' WHERE id = '{}'",
                  at(3000), uid(1000)));
  backend_->exec(fmt::format("UPDATE messages SET updated_at = '{}' WHERE id = '{}'", at(3001), uid(5002)));
  auto status = store_->status(5);
  ASSERT_TRUE(status);
  ASSERT_EQ(status->models.size(), 1u);
  EXPECT_EQ(status->models[0].stale, 2);

  const auto stale = all_pending(*store_, scope());
  ASSERT_EQ(ids(stale), (std::vector<std::string>{uid(1000), uid(1002)}));
  ASSERT_TRUE(stale[0].stored_sha256);
  EXPECT_EQ(*stale[0].stored_sha256, b.rows[0].content_sha256);
  EXPECT_EQ(stale[0].user_content, "edited question");

  // Unchanged input (the answer's timestamp moved, not its text): only markers refresh.
  WriteBatch touch;
  touch.provider = k_provider;
  touch.model = k_model;
  touch.touches.push_back(
      core::RowTouch{stale[1].user_message_id, stale[1].assistant_message_id, stale[1].source_version});
  write(*store_, touch);
  // The changed one is re-embedded in place.
  write(*store_, batch_for({stale[0]}));
  EXPECT_TRUE(all_pending(*store_, scope()).empty());
  EXPECT_EQ(row_count(), 4);
  status = store_->status(5);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->models[0].stale, 0);
}

TEST_P(StoreTest, ALateAnswerMakesTheExchangePendingAgain) {
  conversation(1);
  message(1, 1, "user", "question", at(1));
  auto first = all_pending(*store_, scope());
  ASSERT_EQ(first.size(), 1u);
  write(*store_, batch_for(first));
  message(2, 1, "assistant", "late answer", at(2));
  const auto again = all_pending(*store_, scope());
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].assistant_message_id, uid(2));
  EXPECT_TRUE(again[0].stored_sha256);
}

TEST_P(StoreTest, FailuresAreSkippedUntilRetriedOrEdited) {
  simple_corpus(3);
  const auto pending = all_pending(*store_, scope());
  WriteBatch f;
  f.provider = k_provider;
  f.model = k_model;
  f.failures.push_back(core::Failure{pending[0].user_message_id, core::FailureReason::context_length,
                                     "too long: 'x' \"y\" {z}", pending[0].source_version});
  write(*store_, f);
  EXPECT_EQ(ids(all_pending(*store_, scope())), (std::vector<std::string>{uid(1001), uid(1002)}));
  // `failures --retry`: the failure and nothing else.
  EXPECT_EQ(ids(all_pending(*store_, scope(false, true))), (std::vector<std::string>{uid(1000)}));

  write(*store_, f);
  auto list = store_->failures(k_provider, k_model);
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].user_message_id, uid(1000));
  EXPECT_EQ(core::to_string((*list)[0].reason), "context_length");
  EXPECT_EQ((*list)[0].detail, "too long: 'x' \"y\" {z}");
  EXPECT_EQ((*list)[0].attempts, 2);
  auto all = store_->failures("", "");
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 1u);
  auto status = store_->status(5);
  ASSERT_TRUE(status);
  ASSERT_EQ(status->models.size(), 1u);
  EXPECT_EQ(status->models[0].failed, 1);
  ASSERT_EQ(status->models[0].failures_by_reason.size(), 1u);
  EXPECT_EQ(status->models[0].failures_by_reason[0].first, "context_length");

  // An edit makes it pending again; success clears the failure.
  backend_->exec(fmt::format("UPDATE messages SET content = 'shorter', updated_at = '{}' WHERE id = '{}'",
                             at(4000), uid(1000)));
  auto edited = all_pending(*store_, scope());
  ASSERT_EQ(edited.size(), 3u);
  write(*store_, batch_for({edited[0]}));
  list = store_->failures(k_provider, k_model);
  ASSERT_TRUE(list);
  EXPECT_TRUE(list->empty());
}

TEST_P(StoreTest, ForceReturnsRowsThatAreUpToDate) {
  simple_corpus(5);
  write(*store_, batch_for(all_pending(*store_, scope())));
  auto fresh = open();
  const auto forced = all_pending(*fresh, scope(true));
  EXPECT_EQ(forced.size(), 5u);
  for (const auto& x : forced)
    EXPECT_TRUE(x.stored_sha256);
  auto n = fresh->count_pending(scope(true));
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 5);
}

TEST_P(StoreTest, MessagesDeletedMeanwhileDoNotSinkTheBatch) {
  simple_corpus(4);
  const auto pending = all_pending(*store_, scope());
  backend_->exec(fmt::format("DELETE FROM messages WHERE id = '{}'", uid(1001)));
  auto b = batch_for(pending);
  b.failures.push_back(
      core::Failure{uid(1001), core::FailureReason::provider_rejected, "gone", pending[1].source_version});
  b.touches.push_back(core::RowTouch{uid(1001), std::nullopt, pending[1].source_version});
  write(*store_, b);
  EXPECT_EQ(row_count(), 3);
}

TEST_P(StoreTest, RunsRecordProgressAndStatusReportsThem) {
  simple_corpus(6);
  RunRecord run{k_provider, k_model, R"({"batch_size":8})", "host:1"};
  auto id = store_->begin_run(run);
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_GT(*id, 0);
  auto b = batch_for(all_pending(*store_, scope()));
  b.run_id = *id;
  b.progress.embedded = 6;
  b.progress.tokens = 60;
  b.progress.requests = 1;
  write(*store_, b);
  auto status = store_->status(3);
  ASSERT_TRUE(status);
  ASSERT_FALSE(status->recent_runs.empty());
  EXPECT_EQ(core::to_string(status->recent_runs[0].status), "running");
  EXPECT_EQ(status->recent_runs[0].stats.embedded, 6);
  EXPECT_TRUE(status->recent_runs[0].finished_at.empty());

  core::RunStats final_stats = b.progress;
  final_stats.requests = 2;
  ASSERT_TRUE(store_->finish_run(*id, core::RunStatus::completed, final_stats, ""));
  status = store_->status(3);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->eligible, 6);
  ASSERT_EQ(status->models.size(), 1u);
  EXPECT_EQ(status->models[0].embedded, 6);
  EXPECT_EQ(status->models[0].pending, 0);
  const auto& r = status->recent_runs[0];
  EXPECT_EQ(r.id, *id);
  EXPECT_EQ(core::to_string(r.status), "completed");
  EXPECT_EQ(r.stats.requests, 2);
  EXPECT_EQ(r.stats.tokens, 60);
  EXPECT_FALSE(r.finished_at.empty());
  EXPECT_GE(r.duration_seconds, 0.0);
  auto second = store_->begin_run(run);
  ASSERT_TRUE(second);
  EXPECT_GT(*second, *id);
}

TEST_P(StoreTest, SearchRanksByCosineSimilarity) {
  conversation(1);
  message(1, 1, "user", "about cats", at(1));
  message(2, 1, "assistant", "cats answer", at(2));
  message(3, 1, "user", "about dogs", at(3));
  message(4, 1, "user", "about fish", at(4));
  auto pending = all_pending(*store_, scope());
  ASSERT_EQ(pending.size(), 3u);
  auto b = batch_for(pending);
  b.rows[0].embedding = {1, 0, 0, 0};
  b.rows[1].embedding = {0, 1, 0, 0};
  b.rows[2].embedding = {0.6f, 0.8f, 0, 0};
  write(*store_, b);
  const std::vector<float> query{0, 2, 0, 0};
  auto hits = store_->search(k_provider, k_model, query, 2);
  ASSERT_TRUE(hits) << hits.error().message;
  ASSERT_EQ(hits->hits.size(), 2u);
  EXPECT_EQ(hits->hits[0].user_message_id, uid(3));
  EXPECT_NEAR(hits->hits[0].score, 1.0, 1e-3);
  EXPECT_EQ(hits->hits[0].snippet, "about dogs");
  EXPECT_EQ(hits->hits[0].conversation_id, uid(1));
  EXPECT_EQ(hits->hits[1].user_message_id, uid(4));
  EXPECT_NEAR(hits->hits[1].score, 0.8, 1e-3);
  auto all = store_->search(k_provider, k_model, std::vector<float>{1, 0, 0, 0}, 10);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->hits.size(), 3u);
  EXPECT_EQ(all->hits[0].user_message_id, uid(1));
  EXPECT_EQ(all->hits[0].assistant_message_id, uid(2));
}

// The scan against a brute-force ranking of what was written, with another model's rows
// between ours; then again on the same store (SQLite keeps its scan connections) after
// new rows and rewritten vectors.
TEST_P(StoreTest, SearchMatchesBruteForceAndSeesLaterWrites) {
  simple_corpus(60);
  const auto pending = all_pending(*store_, scope());
  ASSERT_EQ(pending.size(), 60u);
  std::mt19937 rng(14);
  std::normal_distribution<float> normal;
  std::map<std::string, std::vector<float>> ours;
  auto write_random = [&](std::size_t from, std::size_t to, const std::string& model) {
    auto b = batch_for({pending.begin() + static_cast<std::ptrdiff_t>(from),
                        pending.begin() + static_cast<std::ptrdiff_t>(to)});
    b.model = model;
    for (auto& row : b.rows) {
      for (float& x : row.embedding)
        x = normal(rng);
      if (model == k_model) ours[row.user_message_id] = row.embedding;
    }
    write(*store_, b);
  };
  const std::vector<float> query{0.3f, -1.2f, 0.7f, 0.05f};
  auto expect_brute_force = [&] {
    std::vector<std::pair<double, std::string>> ranked;
    for (const auto& [id, v] : ours) {
      double dot = 0, vv = 0, qq = 0;
      for (std::size_t i = 0; i < v.size(); ++i) {
        dot += static_cast<double>(v[i]) * query[i];
        vv += static_cast<double>(v[i]) * v[i];
        qq += static_cast<double>(query[i]) * query[i];
      }
      ranked.emplace_back(dot / std::sqrt(vv * qq), id);
    }
    std::sort(ranked.rbegin(), ranked.rend());
    auto hits = store_->search(k_provider, k_model, query, 10);
    ASSERT_TRUE(hits) << hits.error().message;
    ASSERT_EQ(hits->hits.size(), 10u);
    EXPECT_EQ(hits->method, "exact scan");
    for (std::size_t i = 0; i < hits->hits.size(); ++i) {
      EXPECT_EQ(hits->hits[i].user_message_id, ranked[i].second) << i;
      EXPECT_NEAR(hits->hits[i].score, ranked[i].first, 1e-4) << i;
    }
  };
  write_random(0, 20, k_model);
  write_random(0, 40, "m4-other");
  write_random(20, 40, k_model);
  expect_brute_force();
  write_random(40, 60, k_model);
  write_random(0, 10, k_model);  // new vectors for rows already there
  expect_brute_force();
}

TEST_P(StoreTest, ReleaseClaimsAndWaitForChangesAreCallable) {
  EXPECT_TRUE(store_->release_claims());
  auto waited = store_->wait_for_changes(std::chrono::milliseconds(20));
  ASSERT_TRUE(waited);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, ::testing::ValuesIn(available_backends(true, true, true)),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace lens::store::test
