// Bench data: a Lens SQLite database of N chat exchanges plus exchanges.jsonl holding the
// exact input strings lens-embed sends (core::build_input_text), for the node peers.
#include <sqlite3.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/input_text.h"

namespace {

const char* const k_words[] = {
    "the",          "a",       "how",       "why",         "what",        "when",       "can",
    "should",       "we",      "you",       "I",           "it",          "is",         "are",
    "do",           "does",    "database",  "index",       "query",       "vector",     "embedding",
    "search",       "model",   "token",     "batch",       "request",     "server",     "client",
    "cache",        "latency", "memory",    "thread",      "queue",       "retry",      "limit",
    "rate",         "error",   "timeout",   "deploy",      "build",       "test",       "function",
    "class",        "module",  "config",    "file",        "path",        "network",    "socket",
    "python",       "rust",    "C++",       "postgres",    "sqlite",      "docker",     "kernel",
    "linux",        "compile", "link",      "debug",       "performance", "throughput", "schema",
    "migration",    "backup",  "restore",   "transaction", "lock",        "commit",     "message",
    "conversation", "user",    "assistant", "answer",      "question",    "explain",    "example",
    "difference",   "between", "with",      "without",     "for",         "from",       "into",
    "over",         "under",   "faster",    "slower",      "better",      "simple",     "complex",
    "please",       "thanks",  "also",      "then",        "because",     "so",         "if",
    "not",          "only",    "every",     "each",        "some",        "café",       "naïve",
    "résumé",       "größe",   "日本語",    "emoji",       "😀",           "→",          "data",
    "stream",       "page",    "cursor",    "key"};

std::string sentence(std::mt19937_64& rng, int min_words, int max_words) {
  const int n = min_words + static_cast<int>(rng() % static_cast<unsigned>(max_words - min_words + 1));
  std::string s;
  for (int i = 0; i < n; ++i) {
    if (i) s += ' ';
    s += k_words[rng() % (sizeof k_words / sizeof k_words[0])];
  }
  s += (rng() % 3 == 0) ? "?" : ".";
  return s;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s N DB_PATH JSONL_PATH [SEED] [short|chat|long]\n", argv[0]);
    return 2;
  }
  const long n = std::atol(argv[1]);
  std::mt19937_64 rng(argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 7);
  // short: ~25 cl100k tokens per exchange (the first benchmarks); chat: ~260, a question of
  // a few sentences and an answer of a few paragraphs, as in Lens (large requests are what
  // tests the rate control: 256 of them are ~66k tokens); long: ~350, the size issue 14's
  // independent harness used (256 of them are ~88k tokens).
  const std::string kind = argc > 5 ? argv[5] : "short";
  if (kind != "short" && kind != "chat" && kind != "long") {
    std::fprintf(stderr, "unknown text kind %s (short, chat or long)\n", kind.c_str());
    return 2;
  }
  const int user_words[2] = {kind == "long"   ? 28
                             : kind == "chat" ? 20
                                              : 4,
                             kind == "long"   ? 110
                             : kind == "chat" ? 80
                                              : 14};
  const int reply_words[2] = {kind == "long"   ? 165
                              : kind == "chat" ? 120
                                               : 6,
                              kind == "long"   ? 355
                              : kind == "chat" ? 260
                                               : 24};
  std::remove(argv[2]);
  sqlite3* db = nullptr;
  if (sqlite3_open(argv[2], &db) != SQLITE_OK) return 1;
  sqlite3_exec(
      db,
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"
      "CREATE TABLE conversations (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, title TEXT, created_at TEXT "
      "NOT NULL);"
      "CREATE TABLE messages (id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, role TEXT NOT NULL,"
      " content TEXT, created_at TEXT NOT NULL, updated_at TEXT); BEGIN;",
      nullptr, nullptr, nullptr);
  sqlite3_stmt* conv = nullptr;
  sqlite3_stmt* msg = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO conversations VALUES (?, 'u', NULL, ?)", -1, &conv, nullptr);
  sqlite3_prepare_v2(db, "INSERT INTO messages VALUES (?, ?, ?, ?, ?, NULL)", -1, &msg, nullptr);
  FILE* out = std::fopen(argv[3], "w");
  char id[64], ts[64], cid[64];
  long seconds = 0;
  for (long i = 0; i < n; ++i) {
    if (i % 10 == 0) {
      std::snprintf(cid, sizeof cid, "c%08ld", i / 10);
      std::snprintf(ts, sizeof ts, "2024-01-01T00:00:00Z");
      sqlite3_bind_text(conv, 1, cid, -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(conv, 2, ts, -1, SQLITE_TRANSIENT);
      sqlite3_step(conv);
      sqlite3_reset(conv);
    }
    lens::core::Exchange ex;
    ex.user_content = sentence(rng, user_words[0], user_words[1]);
    ex.assistant_content = sentence(rng, reply_words[0], reply_words[1]);
    ex.assistant_message_id.emplace(1, 'x');  // (= "x" trips a GCC 12 -Wrestrict false positive)
    for (int role = 0; role < 2; ++role) {
      ++seconds;
      std::snprintf(ts, sizeof ts, "2024-%02ld-%02ldT%02ld:%02ld:%02ldZ", 1 + seconds / 2592000 % 12,
                    1 + seconds / 86400 % 28, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
      std::snprintf(id, sizeof id, "%c%09ld", role ? 'a' : 'q', i);
      sqlite3_bind_text(msg, 1, id, -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(msg, 2, cid, -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(msg, 3, role ? "assistant" : "user", -1, SQLITE_STATIC);
      const std::string& content = role ? ex.assistant_content : ex.user_content;
      sqlite3_bind_text(msg, 4, content.c_str(), static_cast<int>(content.size()), SQLITE_TRANSIENT);
      sqlite3_bind_text(msg, 5, ts, -1, SQLITE_TRANSIENT);
      sqlite3_step(msg);
      sqlite3_reset(msg);
    }
    std::fprintf(out, "%s\n", json_string(lens::core::build_input_text(ex)).c_str());
  }
  std::fclose(out);
  sqlite3_finalize(conv);
  sqlite3_finalize(msg);
  sqlite3_exec(db, "COMMIT;", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  return 0;
}
