// lens_verify's core: loads messages, rows and failures (SQLite or PostgreSQL), rebuilds
// every exchange in C++ and compares each stored field with what it must be.
#include "verifier.h"

#include <libpq-fe.h>
#include <sqlite3.h>

#include <fmt/core.h>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_map>

#include "core/input_text.h"
#include "core/types.h"
#include "provider/local_hash.h"
#include "stand_in_vector.h"
#include "tokenizer/tokenizer.h"
#include "util/sha256.h"

namespace lens::verify {
namespace {

struct Message {
  std::string id, conversation, role, order_key;
  std::optional<std::string> content;
};

struct Row {
  std::string user_id;
  std::optional<std::string> assistant_id;
  std::string sha;  // 32 raw bytes
  std::int64_t token_count = 0;
  bool truncated = false;
  std::int64_t dimensions = 0;
  std::vector<float> vector;
};

struct FailureRow {
  std::string user_id, reason;
};

struct Snapshot {
  std::vector<Message> messages;
  std::vector<Row> rows;
  std::vector<FailureRow> failures;
  bool half_precision = false;  // a pgvector halfvec column: values stored as float16
};

// The float16 nearest to `v` (ties to even, subnormals included), back as a float: what
// pgvector keeps of a float32 in a halfvec. Exact in double: a multiple of a power of two.
float round_to_half(float v) {
  if (!std::isfinite(v)) return v;
  const double a = std::fabs(static_cast<double>(v));
  if (a >= 65520.0) return std::copysign(std::numeric_limits<float>::infinity(), v);
  int exponent = 0;
  std::frexp(a, &exponent);  // a = m * 2^exponent, m in [0.5, 1)
  // 11 significant bits for normal halves (>= 2^-14); below, a fixed step of 2^-24.
  const double step = std::ldexp(1.0, std::max(exponent - 11, -24));
  return static_cast<float>(std::nearbyint(static_cast<double>(v) / step) * step);
}

// The contract's "only white space", as the stores test it with SQL trim().
bool blank(const std::string& s) {
  return s.find_first_not_of(" \t\n\r\v\f") == std::string::npos;
}

std::string column_text(sqlite3_stmt* s, int i) {
  const auto* p = sqlite3_column_blob(s, i);
  return p ? std::string(static_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(s, i)))
           : std::string();
}

std::string load_sqlite(const std::string& path, const VerifyOptions& o, Snapshot& snap) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    std::string e = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return "cannot open " + path + ": " + e;
  }
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> guard(db, sqlite3_close);
  sqlite3_busy_timeout(db, 30'000);
  auto query = [&](const char* sql, auto&& each) -> std::string {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK)
      return std::string(sqlite3_errmsg(db)) + ": " + sql;
    sqlite3_bind_text(s, 1, o.provider.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, o.model.c_str(), -1, SQLITE_TRANSIENT);
    int rc = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
      each(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? std::string() : std::string(sqlite3_errmsg(db));
  };
  // Text is read as bytes (column_blob), so invalid UTF-8 arrives exactly as stored.
  std::string err =
      query("SELECT id, conversation_id, role, content, created_at FROM messages", [&](sqlite3_stmt* s) {
        Message m{column_text(s, 0), column_text(s, 1), column_text(s, 2), column_text(s, 4), std::nullopt};
        if (sqlite3_column_type(s, 3) != SQLITE_NULL) m.content = column_text(s, 3);
        snap.messages.push_back(std::move(m));
      });
  if (!err.empty()) return err;
  err = query(
      "SELECT user_message_id, assistant_message_id, content_sha256, token_count, truncated, dimensions, "
      "embedding "
      "FROM message_embeddings WHERE provider = ?1 AND model = ?2",
      [&](sqlite3_stmt* s) {
        Row r;
        r.user_id = column_text(s, 0);
        if (sqlite3_column_type(s, 1) != SQLITE_NULL) r.assistant_id = column_text(s, 1);
        r.sha = column_text(s, 2);
        r.token_count = sqlite3_column_int64(s, 3);
        r.truncated = sqlite3_column_int64(s, 4) != 0;
        r.dimensions = sqlite3_column_int64(s, 5);
        const std::string blob = column_text(s, 6);
        r.vector.resize(blob.size() / 4);
        std::memcpy(r.vector.data(), blob.data(), r.vector.size() * 4);
        snap.rows.push_back(std::move(r));
      });
  if (!err.empty()) return err;
  return query(
      "SELECT user_message_id, coalesce(reason, '') FROM embedding_failures WHERE provider = ?1 AND model = "
      "?2",
      [&](sqlite3_stmt* s) {
        snap.failures.push_back({column_text(s, 0), column_text(s, 1)});
      });
}

std::string load_postgres(const std::string& conninfo, const VerifyOptions& o, Snapshot& snap) {
  std::unique_ptr<PGconn, void (*)(PGconn*)> conn(PQconnectdb(conninfo.c_str()), PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK)
    return std::string("cannot connect: ") + PQerrorMessage(conn.get());
  auto query = [&](const char* sql, auto&& each) -> std::string {
    const char* params[2] = {o.provider.c_str(), o.model.c_str()};
    const int n = std::string_view(sql).find("$2") != std::string_view::npos ? 2 : 0;
    std::unique_ptr<PGresult, void (*)(PGresult*)> res(
        PQexecParams(conn.get(), sql, n, nullptr, params, nullptr, nullptr, 0), PQclear);
    if (PQresultStatus(res.get()) != PGRES_TUPLES_OK)
      return std::string(PQresultErrorMessage(res.get())) + sql;
    for (int i = 0; i < PQntuples(res.get()); ++i)
      each(res.get(), i);
    return {};
  };
  auto get = [](PGresult* r, int i, int c) {
    return std::string(PQgetvalue(r, i, c), static_cast<std::size_t>(PQgetlength(r, i, c)));
  };
  // created_at in whole microseconds since the epoch, zero-padded so that text order is
  // time order; uuid order is the order of its lower-case text.
  std::string err = query(
      "SELECT id::text, conversation_id::text, role, content, "
      "lpad((floor(extract(epoch from created_at) * 1000000)::bigint + 100000000000000000)::text, 20, '0') "
      "FROM messages",
      [&](PGresult* r, int i) {
        Message m{get(r, i, 0), get(r, i, 1), get(r, i, 2), get(r, i, 4), std::nullopt};
        if (!PQgetisnull(r, i, 3)) m.content = get(r, i, 3);
        snap.messages.push_back(std::move(m));
      });
  if (!err.empty()) return err;
  err = query(
      "SELECT user_message_id::text, assistant_message_id::text, encode(content_sha256, 'hex'), token_count, "
      "truncated, dimensions, embedding::real[]::text FROM message_embeddings WHERE provider = $1 AND model "
      "= $2",
      [&](PGresult* res, int i) {
        Row r;
        r.user_id = get(res, i, 0);
        if (!PQgetisnull(res, i, 1)) r.assistant_id = get(res, i, 1);
        const std::string hex = get(res, i, 2);
        for (std::size_t k = 0; k + 1 < hex.size(); k += 2) {
          r.sha.push_back(static_cast<char>(std::stoi(hex.substr(k, 2), nullptr, 16)));
        }
        r.token_count = std::stoll(get(res, i, 3));
        r.truncated = get(res, i, 4) == "t";
        r.dimensions = std::stoll(get(res, i, 5));
        // PostgreSQL prints float4 with the shortest text that reads back exactly.
        const std::string arr = get(res, i, 6);
        const char* p = arr.c_str() + 1;
        while (*p && *p != '}') {
          char* end = nullptr;
          r.vector.push_back(std::strtof(p, &end));
          if (end == p) break;
          p = *end == ',' ? end + 1 : end;
        }
        snap.rows.push_back(std::move(r));
      });
  if (!err.empty()) return err;
  err = query(
      "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
      "WHERE attrelid = 'message_embeddings'::regclass AND attname = 'embedding'",
      [&](PGresult* r, int i) { snap.half_precision = get(r, i, 0).starts_with("halfvec"); });
  if (!err.empty()) return err;
  return query(
      "SELECT user_message_id::text, coalesce(reason, '') FROM embedding_failures WHERE provider = $1 AND "
      "model = $2",
      [&](PGresult* r, int i) {
        snap.failures.push_back({get(r, i, 0), get(r, i, 1)});
      });
}

}  // namespace

std::string VerifyReport::to_json() const {
  nlohmann::json j;
  j["ok"] = ok();
  j["messages"] = messages;
  j["eligible"] = eligible;
  j["rows"] = rows;
  j["rows_ok"] = rows_ok;
  j["truncated_rows"] = truncated_rows;
  j["failures"] = failures;
  j["missing"] = missing;
  j["row_and_failure"] = both;
  j["extra_rows"] = extra_rows;
  j["extra_failures"] = extra_failures;
  j["bad_rows"] = bad_rows;
  j["bad_failures"] = bad_failures;
  j["failures_by_reason"] = failures_by_reason;
  j["problems_by_kind"] = problems_by_kind;
  j["problems"] = problems;
  if (!error.empty()) j["error"] = error;
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

VerifyReport verify(const VerifyOptions& o) {
  VerifyReport rep;
  Snapshot snap;
  const std::string& url = o.db;
  const bool is_pg = url.starts_with("postgres://") || url.starts_with("postgresql://") ||
                     (url.find('=') != std::string::npos && !url.starts_with("sqlite:"));
  std::string path = url;
  if (path.starts_with("sqlite://"))
    path = path.substr(9);
  else if (path.starts_with("sqlite:"))
    path = path.substr(7);
  rep.error = is_pg ? load_postgres(url, o, snap) : load_sqlite(path, o, snap);
  if (!rep.error.empty()) return rep;
  auto tok_r = tokenizer::Tokenizer::load(tokenizer::Encoding::cl100k_base);
  if (!tok_r) {
    rep.error = "tokenizer: " + tok_r.error().message;
    return rep;
  }
  const tokenizer::Tokenizer& tok = **tok_r;

  auto problem = [&](const std::string& kind, const std::string& what) {
    ++rep.problems_by_kind[kind];
    if (rep.problems.size() < o.max_problems) rep.problems.push_back(kind + ": " + what);
  };

  // The contract's answer rule, computed here from the raw messages: the first
  // assistant message after the user message in (created_at, id) order within the
  // conversation, unless another user message comes first; system/tool are skipped.
  rep.messages = static_cast<std::int64_t>(snap.messages.size());
  std::sort(snap.messages.begin(), snap.messages.end(), [](const Message& a, const Message& b) {
    return std::tie(a.conversation, a.order_key, a.id) < std::tie(b.conversation, b.order_key, b.id);
  });
  std::unordered_map<std::string, core::Exchange> expected;
  for (std::size_t i = 0; i < snap.messages.size(); ++i) {
    const Message& m = snap.messages[i];
    if (m.role != "user" || !m.content || blank(*m.content)) continue;
    core::Exchange ex;
    ex.user_message_id = m.id;
    ex.user_content = *m.content;
    for (std::size_t j = i + 1; j < snap.messages.size() && snap.messages[j].conversation == m.conversation;
         ++j) {
      if (snap.messages[j].role == "user") break;
      if (snap.messages[j].role == "assistant") {
        ex.assistant_message_id = snap.messages[j].id;
        ex.assistant_content = snap.messages[j].content.value_or("");
        break;
      }
    }
    expected.emplace(m.id, std::move(ex));
  }
  rep.eligible = static_cast<std::int64_t>(expected.size());

  std::unordered_map<std::string, int> row_count, failure_count;
  rep.failures = static_cast<std::int64_t>(snap.failures.size());
  for (const auto& f : snap.failures) {
    ++failure_count[f.user_id];
    ++rep.failures_by_reason[f.reason];
    rep.failed_ids.insert(f.user_id);
    if (!expected.contains(f.user_id)) {
      ++rep.extra_failures;
      problem("extra_failure", f.user_id + " is not an eligible user message");
    }
    if (f.reason.empty() || (!o.allowed_reasons.empty() && !o.allowed_reasons.contains(f.reason))) {
      ++rep.bad_failures;
      problem("bad_failure_reason", f.user_id + " failed with reason \"" + f.reason + "\"");
    }
  }

  rep.rows = static_cast<std::int64_t>(snap.rows.size());
  std::vector<float> want;
  for (const Row& r : snap.rows) {
    if (++row_count[r.user_id] > 1) problem("duplicate_row", r.user_id);
    auto it = expected.find(r.user_id);
    if (it == expected.end()) {
      ++rep.extra_rows;
      problem("extra_row", r.user_id + " is not an eligible user message");
      continue;
    }
    const core::Exchange& ex = it->second;
    std::string input = core::build_input_text(ex);
    bool truncated = false;
    if (tok.count(input) > static_cast<std::size_t>(o.max_input_tokens)) {
      input.resize(tok.truncate(input, static_cast<std::size_t>(o.max_input_tokens)).text.size());
      truncated = true;
    }
    const auto sha = util::sha256(input);
    const auto dims =
        o.dimensions > 0 ? static_cast<std::size_t>(o.dimensions) : static_cast<std::size_t>(r.dimensions);
    want.assign(dims, 0.0f);
    if (o.vectors == VectorSource::stand_in) {
      stand_in::stand_in_vector(input, want);
    } else {
      provider::local_hash_embed(input, want);
    }
    if (snap.half_precision) std::transform(want.begin(), want.end(), want.begin(), round_to_half);
    bool ok = true;
    auto check = [&](bool good, const char* kind, const std::string& detail) {
      if (good) return;
      ok = false;
      problem(kind, r.user_id + ": " + detail);
    };
    check(r.assistant_id == ex.assistant_message_id, "wrong_answer",
          fmt::format("assistant_message_id {} but the answer is {}", r.assistant_id.value_or("NULL"),
                      ex.assistant_message_id.value_or("NULL")));
    check(r.sha.size() == 32 && std::memcmp(r.sha.data(), sha.data(), 32) == 0, "wrong_sha256",
          "content_sha256 is not the sha256 of the exchange's input text");
    check(r.token_count == static_cast<std::int64_t>(tok.count(input)), "wrong_token_count",
          fmt::format("token_count {} but the input has {}", r.token_count, tok.count(input)));
    check(r.truncated == truncated, "wrong_truncated",
          fmt::format("truncated {} but should be {}", r.truncated, truncated));
    check(r.dimensions == static_cast<std::int64_t>(dims) && r.vector.size() == dims, "wrong_dimensions",
          fmt::format("dimensions {} with {} values, expected {}", r.dimensions, r.vector.size(), dims));
    // Bit-for-bit: the provider's float32 values (halfvec: each rounded to float16), in the
    // provider's order for this input.
    check(r.vector.size() == want.size() && std::memcmp(r.vector.data(), want.data(), want.size() * 4) == 0,
          "wrong_vector", "the embedding is not the provider's vector of this input");
    if (truncated) ++rep.truncated_rows;
    if (ok) {
      ++rep.rows_ok;
    } else {
      ++rep.bad_rows;
    }
  }

  for (const auto& [id, ex] : expected) {
    const int rows = row_count.contains(id) ? row_count[id] : 0;
    const int fails = failure_count.contains(id) ? failure_count[id] : 0;
    if (rows == 0 && fails == 0) {
      ++rep.missing;
      problem("missing", id + " has neither a row nor a failure");
    } else if (rows > 0 && fails > 0) {
      ++rep.both;
      problem("row_and_failure", id + " has a row and a failure");
    }
  }
  return rep;
}

}  // namespace lens::verify
