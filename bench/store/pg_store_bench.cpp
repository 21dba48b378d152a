// PostgreSQL store benchmark: write rate of write_batch against `psql \copy` (binary) of
// the same 3072-d rows in the same run, and pending-page / per-row cost at 10^4 vs 10^6.
// Usage: bench_store_postgres [--write-rows N] [--dims D] [--batch B] [--scale N]
// Uses $LENS_BENCH_PG_URL, else starts a throwaway server with scripts/pg-test-server.sh.
#include <libpq-fe.h>
#include <unistd.h>

#include <fmt/core.h>
#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "store/postgres/postgres_store.h"
#include "support/pg.h"
#include "support/source_schema.h"
#include "util/sha256.h"

using namespace lens;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// The throwaway server we started: std::exit (die() as well as main's return) destroys it,
// which stops it.
std::unique_ptr<lens::test::PgServer> g_server;

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "bench: %s\n", m.c_str());
  std::exit(1);
}

void exec(PGconn* c, const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  const auto st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
    die(fmt::format("{}\n{}", PQresultErrorMessage(r), sql));
  PQclear(r);
}

std::string uid(std::int64_t n) {
  return fmt::format("00000000-0000-4000-8000-{:012d}", n);
}

// n user messages, each answered, one conversation per 10 exchanges; ids 1..n / n+1..2n.
void generate(PGconn* c, std::int64_t from, std::int64_t to) {
  exec(c,
       fmt::format("INSERT INTO conversations (id, user_id, created_at) SELECT "
                   "('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, gen_random_uuid(), now() "
                   "FROM generate_series({}, {}) g ON CONFLICT DO NOTHING",
                   from / 10, to / 10));
  exec(c, fmt::format(
              "INSERT INTO messages (id, conversation_id, role, content, created_at) "
              "SELECT ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, "
              "('00000000-0000-4000-8000-' || lpad((g / 10)::text, 12, '0'))::uuid, 'user', "
              "'question number ' || g || ' about something', "
              "'2024-01-01'::timestamptz + g * interval '1 second' FROM generate_series({0}, {1}) g; "
              "INSERT INTO messages (id, conversation_id, role, content, created_at) "
              "SELECT ('00000000-0000-4000-9000-' || lpad(g::text, 12, '0'))::uuid, "
              "('00000000-0000-4000-8000-' || lpad((g / 10)::text, 12, '0'))::uuid, 'assistant', "
              "'answer number ' || g, '2024-01-01'::timestamptz + g * interval '1 second' + interval '1 ms' "
              "FROM generate_series({0}, {1}) g",
              from, to));
  exec(c, "ANALYZE messages; ANALYZE conversations");
}

std::vector<core::EmbeddingRow> make_rows(std::int64_t first, std::size_t n, int dims, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<core::EmbeddingRow> rows(n);
  for (std::size_t i = 0; i < n; ++i) {
    auto& r = rows[i];
    r.user_message_id = uid(first + static_cast<std::int64_t>(i));
    r.content_sha256 = util::sha256(r.user_message_id);
    r.token_count = 12;
    r.source_version = "2024-01-01T00:00:00.000000Z";
    r.embedding.resize(static_cast<std::size_t>(dims));
    for (auto& x : r.embedding)
      x = d(rng);
  }
  return rows;
}

// The same rows as psql's binary COPY input for message_embeddings (all columns).
void write_copy_file(const std::string& path, const std::string& provider, const std::string& model,
                     const std::vector<core::EmbeddingRow>& rows) {
  std::ofstream out(path, std::ios::binary);
  std::string buf;
  auto u16 = [&](std::uint16_t v) {
    v = std::byteswap(v);
    buf.append(reinterpret_cast<char*>(&v), 2);
  };
  auto u32 = [&](std::uint32_t v) {
    v = std::byteswap(v);
    buf.append(reinterpret_cast<char*>(&v), 4);
  };
  auto u64 = [&](std::uint64_t v) {
    v = std::byteswap(v);
    buf.append(reinterpret_cast<char*>(&v), 8);
  };
  auto text = [&](std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    buf.append(s);
  };
  auto uuid = [&](const std::string& s) {
    u32(16);
    std::string hex;
    for (char ch : s)
      if (ch != '-') hex += ch;
    for (std::size_t i = 0; i < 32; i += 2)
      buf.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  };
  buf.append("PGCOPY\n\xff\r\n\0", 11);
  u32(0);
  u32(0);
  // 2024-01-01 in microseconds since 2000-01-01.
  const std::uint64_t ts = 757382400ULL * 1000000ULL;
  for (const auto& r : rows) {
    u16(12);
    text(provider);
    text(model);
    uuid(r.user_message_id);
    u32(0xFFFFFFFFu);  // assistant_message_id NULL
    u32(32);
    buf.append(reinterpret_cast<const char*>(r.content_sha256.data()), 32);
    u32(4);
    u32(static_cast<std::uint32_t>(r.token_count));
    u32(1);
    buf.push_back(0);
    u32(4);
    u32(static_cast<std::uint32_t>(r.embedding.size()));
    u32(static_cast<std::uint32_t>(20 + 8 * r.embedding.size()));
    u32(1);
    u32(0);
    u32(700);
    u32(static_cast<std::uint32_t>(r.embedding.size()));
    u32(1);
    for (float f : r.embedding) {
      u32(4);
      u32(std::bit_cast<std::uint32_t>(f));
    }
    u32(8);
    u64(ts);  // source_version
    u32(8);
    u64(ts);  // created_at
    u32(8);
    u64(ts);  // updated_at
    if (buf.size() > (1 << 20)) {
      out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
      buf.clear();
    }
  }
  u16(0xFFFF);
  out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
}

struct Args {
  std::size_t write_rows = 4000;
  int dims = 3072;
  std::size_t batch = 500;
  std::int64_t scale = 1'000'000;
};

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const std::string v = argv[i + 1];
    if (k == "--write-rows")
      a.write_rows = std::stoul(v);
    else if (k == "--dims")
      a.dims = std::stoi(v);
    else if (k == "--batch")
      a.batch = std::stoul(v);
    else if (k == "--scale")
      a.scale = std::stoll(v);
    else
      die("unknown flag " + k);
  }
  std::string url = std::getenv("LENS_BENCH_PG_URL") ? std::getenv("LENS_BENCH_PG_URL") : "";
  if (url.empty()) {
    // A buffer cache that holds the 10^6 working set, as a production server's would.
    setenv("PG_TEST_SHARED_BUFFERS", "1GB", 0);
    g_server = lens::test::PgServer::start(fmt::format("/tmp/lens-bench-pg-{}.env", getpid()));
    if (!g_server->ok()) die(g_server->error());
    url = g_server->url();
  }
  const std::string schema = fmt::format("bench_{}", getpid());
  PGconn* admin = PQconnectdb(url.c_str());
  if (PQstatus(admin) != CONNECTION_OK) die(PQerrorMessage(admin));
  PQsetNoticeProcessor(
      admin, [](void*, const char*) {}, nullptr);
  exec(admin, fmt::format("CREATE SCHEMA {0}; SET search_path = {0}", schema));
  exec(admin, lens::test::k_postgres_source_schema);  // the Lens tables: the store never creates them
  const std::string conninfo = lens::test::with_pg_option(url, "options", "-csearch_path=" + schema);

  store::PostgresOptions o;
  o.conninfo = conninfo;
  o.use_claims = false;
  auto opened = store::open_postgres_store(o);
  if (!opened) die(opened.error().message);
  auto& st = **opened;
  if (auto m = st.migrate(); !m) die(m.error().message);
  std::mt19937 rng(42);

  // ---- 1. write rate vs psql \copy (binary), same rows, same table ----
  generate(admin, 1, static_cast<std::int64_t>(a.write_rows));
  const auto rows = make_rows(1, a.write_rows, a.dims, rng);
  const std::string copy_file = fmt::format("/tmp/lens-bench-copy-{}.bin", getpid());
  write_copy_file(copy_file, "bench", "psql", rows);
  double best_ours = 1e9, best_psql = 1e9;
  for (int round = 0; round < 3; ++round) {
    exec(admin, "TRUNCATE message_embeddings; CHECKPOINT");
    auto t = Clock::now();
    for (std::size_t i = 0; i < rows.size(); i += a.batch) {
      store::WriteBatch b;
      b.provider = "bench";
      b.model = "ours";
      b.rows.assign(rows.begin() + static_cast<std::ptrdiff_t>(i),
                    rows.begin() + static_cast<std::ptrdiff_t>(std::min(rows.size(), i + a.batch)));
      if (auto s = st.write_batch(b); !s) die(s.error().message);
    }
    best_ours = std::min(best_ours, seconds_since(t));
    exec(admin, "TRUNCATE message_embeddings; CHECKPOINT");
    t = Clock::now();
    const std::string cmd = fmt::format(
        "psql '{}' -qX -v ON_ERROR_STOP=1 -c \"\\copy message_embeddings FROM '{}' WITH (FORMAT binary)\"",
        conninfo, copy_file);
    if (std::system(cmd.c_str()) != 0) die("psql \\copy failed");
    best_psql = std::min(best_psql, seconds_since(t));
  }
  std::remove(copy_file.c_str());
  const double ours_rate = static_cast<double>(a.write_rows) / best_ours;
  const double psql_rate = static_cast<double>(a.write_rows) / best_psql;
  fmt::print("write {} rows x {} dims, batches of {} (best of 3):\n", a.write_rows, a.dims, a.batch);
  fmt::print("  write_batch (COPY->temp, INSERT..ON CONFLICT): {:.3f} s  {:.0f} rows/s\n", best_ours,
             ours_rate);
  fmt::print("  psql \\copy binary into message_embeddings:    {:.3f} s  {:.0f} rows/s\n", best_psql,
             psql_rate);
  fmt::print("  ratio ours/psql: {:.2f}\n", ours_rate / psql_rate);
  exec(admin, "TRUNCATE message_embeddings");

  // ---- 2. pending page and per-row write cost at 10^4 and at `scale` ----
  auto measure = [&](std::int64_t total) {
    // Half of the exchanges already embedded (small vectors: this is about the query).
    // NOT EXISTS keeps the rows written at the smaller scale; the answer of user g is
    // 00000000-0000-4000-9000-g, one millisecond later (the exchange's source_version).
    exec(admin,
         "INSERT INTO message_embeddings (provider, model, user_message_id, assistant_message_id, "
         "content_sha256, "
         "token_count, dimensions, embedding, source_version) "
         "SELECT 'bench', 'pending', m.id, ('00000000-0000-4000-9000-' || substr(m.id::text, 25))::uuid, "
         "'\\x00'::bytea, 1, 8, '{1,2,3,4,5,6,7,8}', m.created_at + interval '1 ms' "
         "FROM messages m WHERE m.role = 'user' AND (substr(m.id::text, 25)::bigint % 2) = 0 AND NOT EXISTS "
         "(SELECT 1 FROM message_embeddings e WHERE e.provider = 'bench' AND e.model = 'pending' "
         "AND e.user_message_id = m.id)");
    exec(admin, "VACUUM ANALYZE message_embeddings");
    exec(admin, "VACUUM ANALYZE messages");
    store::WorkScope scope;
    scope.provider = "bench";
    scope.model = "pending";
    store::PendingCursor cursor;
    std::size_t pages = 0, items = 0;
    double worst = 0;
    std::vector<double> page_ms;  // to compare the start and the end of the keyset
    const auto t = Clock::now();
    std::vector<core::Exchange> sample;
    for (;;) {
      const auto p0 = Clock::now();
      auto page = st.next_pending(scope, cursor, 1000);
      if (!page) die(page.error().message);
      worst = std::max(worst, seconds_since(p0));
      page_ms.push_back(seconds_since(p0) * 1e3);
      ++pages;
      items += page->items.size();
      if (sample.size() < 2000)
        for (auto& x : page->items)
          if (sample.size() < 2000) sample.push_back(std::move(x));
      if (page->exhausted) break;
    }
    const double total_s = seconds_since(t);
    // Median of the first and of the last tenth of the pages: flat = the cursor's
    // position does not matter.
    auto median_of = [&](std::size_t from, std::size_t to) {
      std::vector<double> v(page_ms.begin() + static_cast<std::ptrdiff_t>(from),
                            page_ms.begin() + static_cast<std::ptrdiff_t>(to));
      if (v.empty()) return 0.0;
      std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
      return v[v.size() / 2];
    };
    const std::size_t tenth = std::max<std::size_t>(1, page_ms.size() / 10);
    const double first_ms = median_of(0, tenth);
    const double last_ms =
        median_of(page_ms.size() - tenth - 1, page_ms.size() - 1);  // the last page is short
    // Per-row write cost into a table of this size: 2000 rows of 256 dims in batches of 500.
    std::vector<core::EmbeddingRow> wr;
    for (const auto& x : sample) {
      core::EmbeddingRow r;
      r.user_message_id = x.user_message_id;
      r.assistant_message_id = x.assistant_message_id;
      r.content_sha256 = util::sha256(x.user_content);
      r.token_count = 5;
      r.source_version = x.source_version;
      r.embedding.assign(256, 0.25f);
      wr.push_back(std::move(r));
    }
    const auto tw = Clock::now();
    for (std::size_t i = 0; i < wr.size(); i += 500) {
      store::WriteBatch b;
      b.provider = "bench";
      b.model = "pending";
      b.rows.assign(wr.begin() + static_cast<std::ptrdiff_t>(i),
                    wr.begin() + static_cast<std::ptrdiff_t>(std::min(wr.size(), i + 500)));
      if (auto s = st.write_batch(b); !s) die(s.error().message);
    }
    const double per_row_us =
        seconds_since(tw) / static_cast<double>(std::max<std::size_t>(1, wr.size())) * 1e6;
    auto c = st.count_pending(scope);
    fmt::print(
        "{:>9} exchanges: full pending pass {:.2f} s over {} pages of 1000 ({:.2f} ms/page avg, median "
        "first tenth {:.2f} ms, last tenth {:.2f} ms, worst {:.2f} ms), {} pending; write {:.1f} us/row "
        "(256-d, batches of 500); count_pending {}\n",
        total, total_s, pages, total_s / static_cast<double>(pages) * 1e3, first_ms, last_ms, worst * 1e3,
        items, per_row_us, c ? *c : -1);
  };
  exec(admin, "TRUNCATE messages, conversations CASCADE");
  generate(admin, 1, 10'000);
  measure(10'000);
  if (a.scale > 10'000) {
    generate(admin, 10'001, a.scale);
    measure(a.scale);
  }
  if (a.scale > 10'000) {
    // ---- 3. the same comparison interleaved, so load drift on a shared machine hits
    // both sizes alike: a page (and a write of its pending rows) at 10^4, then one at
    // `scale`, and so on. The two full passes above ran minutes apart.
    const std::string small = schema + "_small";
    exec(admin, fmt::format("CREATE SCHEMA {0}; SET search_path = {0}", small));
    exec(admin, lens::test::k_postgres_source_schema);
    store::PostgresOptions so = o;
    so.conninfo = lens::test::with_pg_option(url, "options", "-csearch_path=" + small);
    auto small_store = store::open_postgres_store(so);
    if (!small_store) die(small_store.error().message);
    if (auto m = (*small_store)->migrate(); !m) die(m.error().message);
    generate(admin, 1, 10'000);
    exec(admin,
         "INSERT INTO message_embeddings (provider, model, user_message_id, assistant_message_id, "
         "content_sha256, "
         "token_count, dimensions, embedding, source_version) "
         "SELECT 'bench', 'pending', m.id, ('00000000-0000-4000-9000-' || substr(m.id::text, 25))::uuid, "
         "'\\x00'::bytea, 1, 8, '{1,2,3,4,5,6,7,8}', m.created_at + interval '1 ms' "
         "FROM messages m WHERE m.role = 'user' AND (substr(m.id::text, 25)::bigint % 2) = 0");
    exec(admin, "VACUUM ANALYZE message_embeddings");
    exec(admin, "VACUUM ANALYZE messages");
    exec(admin, fmt::format("SET search_path = {}", schema));
    store::WorkScope scope;
    scope.provider = "bench";
    scope.model = "interleaved";  // nothing embedded for it yet in either schema
    struct Side {
      store::Store* st;
      store::PendingCursor cursor;
      std::vector<double> page_ms, row_us;
    };
    Side sides[2] = {{small_store->get(), {}, {}, {}}, {opened->get(), {}, {}, {}}};
    for (int round = 0; round < 200; ++round) {
      for (auto& side : sides) {
        auto t0 = Clock::now();
        auto page = side.st->next_pending(scope, side.cursor, 1000);
        if (!page) die(page.error().message);
        side.page_ms.push_back(seconds_since(t0) * 1e3);
        if (page->exhausted) side.cursor = {};
        store::WriteBatch b;
        b.provider = "bench";
        b.model = "interleaved";
        for (std::size_t i = 0; i < page->items.size() && i < 200; ++i) {
          const auto& x = page->items[i];
          core::EmbeddingRow r;
          r.user_message_id = x.user_message_id;
          r.assistant_message_id = x.assistant_message_id;
          r.content_sha256 = util::sha256(x.user_content);
          r.token_count = 5;
          r.source_version = x.source_version;
          r.embedding.assign(256, 0.25f);
          b.rows.push_back(std::move(r));
        }
        if (b.rows.empty()) continue;
        t0 = Clock::now();
        if (auto w = side.st->write_batch(b); !w) die(w.error().message);
        side.row_us.push_back(seconds_since(t0) * 1e6 / static_cast<double>(b.rows.size()));
      }
    }
    auto median = [](std::vector<double> v) {
      std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
      return v[v.size() / 2];
    };
    const double p_small = median(sides[0].page_ms), p_big = median(sides[1].page_ms);
    const double w_small = median(sides[0].row_us), w_big = median(sides[1].row_us);
    fmt::print(
        "interleaved, 200 pages of 1000 each (medians): pending page {:.2f} ms at 10^4 vs {:.2f} ms at {} "
        "(x{:.2f}); write {:.1f} us/row at 10^4 vs {:.1f} us/row at {} (x{:.2f})\n",
        p_small, p_big, a.scale, p_big / p_small, w_small, w_big, a.scale, w_big / w_small);
    small_store->reset();
    exec(admin, fmt::format("DROP SCHEMA {} CASCADE", small));
  }
  if (!std::getenv("LENS_BENCH_KEEP"))
    exec(admin, fmt::format("DROP SCHEMA {} CASCADE", schema));
  else
    fmt::print("kept schema {}\n", schema);
  PQfinish(admin);
  opened->reset();
  return 0;
}
