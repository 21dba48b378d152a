// lens_partition: three `lens-embed run` workers share one PostgreSQL and the stand-in
// provider; one of them is cut off for longer than its lease while the others take its
// claims over and the test edits some of the messages it holds; then it comes back with
// the results it kept in memory. Its late writes must never replace a newer row
// (issue 16; docs/OPERATIONS.md, "Partitions and paused workers").
//
//   --mode sigstop  the worker is paused with SIGSTOP and resumed with SIGCONT (loopback).
//   --mode netns    a real network partition: PostgreSQL and the stand-in in one network
//                   namespace, each worker in its own, joined by veth pairs; the worker's
//                   link is set down and up again. Needs root (ip netns); without it the
//                   test FAILS, saying why.
//
// What is checked: an audit trigger records every update of a row to an older
// source_version (must stay empty); the cut-off worker reports fenced late writes; the
// verifier passes (no stale or wrong vector, nothing missing) right after the workers end
// and a last run finds nothing to do; each worker's counters equal what its run row holds,
// and every row written or fenced was answered by the provider.
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <fmt/core.h>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <thread>

#include "support/corpus.h"
#include "support/fence_audit.h"
#include "support/paths.h"
#include "support/pg.h"
#include "support/process.h"
#include "support/source_schema.h"
#include "support/sql.h"
#include "support/stand_in.h"
#include "verifier.h"

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* k_api_key = "sk-partition-5e6f7a8b9c0d1e2f";
constexpr const char* k_model = "text-embedding-3-small";
constexpr int k_workers = 3;
constexpr int k_dimensions = 32;
constexpr const char* k_lease_seconds = "3";
// Network of the veth pairs: worker i talks to 10.213.i.1 (the server side) from 10.213.i.2.
constexpr const char* k_trust_cidr = "10.213.0.0/16";

struct Options {
  std::string mode = "sigstop";
  bool inner = false;  // netns: the part that runs inside the server namespace
  std::string prefix;  // netns: the namespaces' name prefix
  std::int64_t exchanges = 3000;
  bool keep = false;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto v = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--mode")
      o.mode = v();
    else if (a == "--inner")
      o.inner = true;
    else if (a == "--prefix")
      o.prefix = v();
    else if (a == "--exchanges")
      o.exchanges = std::stoll(v());
    else if (a == "--keep")
      o.keep = true;
    else
      throw std::invalid_argument("unknown argument " + a);
  }
  if (o.mode != "sigstop" && o.mode != "netns") throw std::invalid_argument("--mode sigstop|netns");
  return o;
}

const auto g_started = Clock::now();

void say(const std::string& s) {
  std::fprintf(stderr, "[partition %6.1fs] %s\n",
               std::chrono::duration<double>(Clock::now() - g_started).count(), s.c_str());
}

// Runs a shell command; its exit status (0 = success).
int sh(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

// ---- netns topology (outer process) --------------------------------------------------

std::string server_ns(const std::string& prefix) {
  return prefix + "s";
}
std::string worker_ns(const std::string& prefix, int i) {
  return fmt::format("{}w{}", prefix, i);
}
// The server-side end of worker i's veth pair (in the server namespace): the one to cut.
std::string server_link(const std::string& prefix, int i) {
  return fmt::format("{}a{}", prefix, i);
}
std::string worker_link(const std::string& prefix, int i) {
  return fmt::format("{}b{}", prefix, i);
}
std::string server_address(int i) {
  return fmt::format("10.213.{}.1", i);
}

void remove_topology(const std::string& prefix) {
  // Deleting a namespace deletes the veth ends inside it, and with them their peers.
  (void)sh(fmt::format("ip netns del {} 2>/dev/null", server_ns(prefix)));
  for (int i = 0; i < k_workers; ++i)
    (void)sh(fmt::format("ip netns del {} 2>/dev/null", worker_ns(prefix, i)));
}

// Empty on success, else what failed.
std::string make_topology(const std::string& prefix) {
  std::vector<std::string> cmds = {fmt::format("ip netns add {}", server_ns(prefix)),
                                   fmt::format("ip -n {} link set lo up", server_ns(prefix))};
  for (int i = 0; i < k_workers; ++i) {
    const auto w = worker_ns(prefix, i), s = server_ns(prefix), a = server_link(prefix, i),
               b = worker_link(prefix, i);
    cmds.push_back(fmt::format("ip netns add {}", w));
    cmds.push_back(fmt::format("ip -n {} link set lo up", w));
    cmds.push_back(fmt::format("ip link add {} type veth peer name {}", a, b));
    cmds.push_back(fmt::format("ip link set {} netns {}", a, s));
    cmds.push_back(fmt::format("ip link set {} netns {}", b, w));
    cmds.push_back(fmt::format("ip -n {} addr add {}/24 dev {}", s, server_address(i), a));
    cmds.push_back(fmt::format("ip -n {} addr add 10.213.{}.2/24 dev {}", w, i, b));
    cmds.push_back(fmt::format("ip -n {} link set {} up", s, a));
    cmds.push_back(fmt::format("ip -n {} link set {} up", w, b));
  }
  for (const auto& c : cmds) {
    if (sh(c + " 2>&1") != 0) return c;
  }
  return {};
}

int run_outer(int argc, char** argv) {
  if (::geteuid() != 0) {
    std::fprintf(stderr,
                 "lens_partition: FAILED: --mode netns needs root (it creates network namespaces and veth "
                 "pairs with `ip netns`); this process runs as uid %d\n",
                 static_cast<int>(::geteuid()));
    return 1;
  }
  if (sh("command -v ip >/dev/null 2>&1") != 0) {
    std::fprintf(stderr, "lens_partition: FAILED: no `ip` command (iproute2) for --mode netns\n");
    return 1;
  }
  const std::string prefix = fmt::format("lp{}", ::getpid() % 10'000'000);
  remove_topology(prefix);
  if (auto failed = make_topology(prefix); !failed.empty()) {
    remove_topology(prefix);
    std::fprintf(stderr,
                 "lens_partition: FAILED: cannot build the network namespaces (`%s` failed); this machine "
                 "does not allow ip netns / veth pairs\n",
                 failed.c_str());
    return 1;
  }
  say(fmt::format("namespaces {}s (PostgreSQL, stand-in), {}w0..{} (workers)", prefix, prefix,
                  k_workers - 1));
  std::string cmd =
      fmt::format("ip netns exec {} /proc/{}/exe --inner --prefix {}", server_ns(prefix), ::getpid(), prefix);
  for (int i = 1; i < argc; ++i)
    cmd += fmt::format(" '{}'", argv[i]);
  const int rc = sh(cmd);
  remove_topology(prefix);
  if (sh(fmt::format("ip netns list | grep -q '^{}'", prefix)) == 0) {
    std::fprintf(stderr, "lens_partition: namespaces %s* were not all removed\n", prefix.c_str());
    return 1;
  }
  return rc;
}

// ---- the scenario ----------------------------------------------------------------------

struct Worker {
  pid_t pid = -1;
  std::string id;  // host:pid, its name in embedding_claims
  std::string out, err;
  std::optional<int> exit_code;
};

std::string hostname() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return host;
}

std::string sql_list(const std::vector<std::string>& ids) {
  std::string out;
  for (const auto& id : ids)
    out += (out.empty() ? "'" : ",'") + id + "'";
  return out;
}

std::int64_t number(lens::test::Db& db, const std::string& sql) {
  auto v = db.scalar(sql);
  if (!v) throw std::runtime_error("query failed: " + db.last_error() + " in " + sql);
  return v->empty() ? 0 : std::stoll(*v);
}

int run_scenario(const Options& o) {
  const bool netns = o.mode == "netns";
  lens::test::TempDir dir("partition_" + o.mode);
  say(fmt::format("mode {} dir {} exchanges {}", o.mode, dir.path(), o.exchanges));
  if (netns) {
    ::setenv("PG_TEST_LISTEN_ADDRESSES", "*", 1);
    ::setenv("PG_TEST_TRUST_CIDR", k_trust_cidr, 1);
  }
  auto pg = lens::test::PgServer::start(dir / "pg.env");
  if (!pg->ok()) {
    std::fprintf(stderr, "lens_partition: %s\n", pg->error().c_str());
    return 1;
  }
  const std::string admin_url = pg->url();
  // What worker i uses: over its veth pair (netns) or loopback.
  auto db_url_for = [&](int i) {
    return netns ? fmt::format("postgresql://postgres@{}:{}/postgres", server_address(i), pg->port())
                 : admin_url;
  };
  auto db = lens::test::Db::open(admin_url);
  if (!db || !lens::test::create_source_schema(*db).empty()) {
    std::fprintf(stderr, "lens_partition: cannot create the source tables\n");
    return 1;
  }
  const lens::test::Env env = {{"SUPERMIND_API_KEY", k_api_key},
                               {"LENS_CLAIM_LEASE_SECONDS", k_lease_seconds}};
  auto init = lens::test::run_lens({"init", "--db", admin_url}, dir / "init", env);
  if (init.exit_code != 0) {
    std::fprintf(stderr, "lens_partition: init failed: %s%s\n", init.out.c_str(), init.err.c_str());
    return 1;
  }
  // Every update of a row to an older source_version: what fencing must make impossible.
  if (auto e = lens::test::install_fence_audit(*db); !e.empty()) {
    std::fprintf(stderr, "lens_partition: audit trigger: %s\n", e.c_str());
    return 1;
  }
  lens::test::CorpusOptions co;
  co.exchanges = o.exchanges;
  co.p_poison = 0;
  co.seed = 16;
  const auto corpus = lens::test::make_corpus(co);
  if (auto e = db->insert(corpus.messages); !e.empty()) {
    std::fprintf(stderr, "lens_partition: loading the corpus: %s\n", e.c_str());
    return 1;
  }

  lens::stand_in::StandInOptions so;
  so.host = netns ? "0.0.0.0" : "127.0.0.1";
  so.api_key = k_api_key;
  so.latency_ms = 150;  // requests in flight at any moment, so the victim holds results
  so.latency_jitter_ms = 50;
  // A thread per keep-alive connection: the paused worker's idle connections hold theirs,
  // so leave room for everyone else's (64 ran out: the others timed out).
  so.threads = 512;
  lens::test::StandIn provider(so);
  if (!provider.ok()) {
    std::fprintf(stderr, "lens_partition: the stand-in could not bind\n");
    return 1;
  }

  // ---- three workers
  const std::string host = hostname();
  std::vector<Worker> workers(k_workers);
  for (int i = 0; i < k_workers; ++i) {
    const std::string base =
        netns ? fmt::format("http://{}:{}/v1", server_address(i), provider.port()) : provider.base_url();
    std::vector<std::string> args = {"run", "--db", db_url_for(i)};
    for (const auto& a : lens::test::supermind_args(base, k_model))
      args.push_back(a);
    for (const auto& a : std::vector<std::string>{"--dimensions", std::to_string(k_dimensions), "--timeout",
                                                  "2", "--batch-size", "16", "--quiet", "--json", "--tpm",
                                                  "0", "--rpm", "0", "--unavailable-after", "300",
                                                  "--log-file", dir / fmt::format("worker{}.log", i)})
      args.push_back(a);
    lens::test::SpawnOptions sp;
    workers[i].out = dir / fmt::format("worker{}.out", i);
    workers[i].err = dir / fmt::format("worker{}.err", i);
    sp.out_path = workers[i].out;
    sp.err_path = workers[i].err;
    sp.env = env;
    if (netns) {
      std::vector<std::string> argv = {"ip", "netns", "exec", worker_ns(o.prefix, i),
                                       lens::test::lens_embed_binary()};
      argv.insert(argv.end(), args.begin(), args.end());
      workers[i].pid = lens::test::spawn(argv, sp);  // ip execs lens-embed: the same pid
    } else {
      workers[i].pid = lens::test::spawn_lens(args, sp);
    }
    if (workers[i].pid <= 0) {
      std::fprintf(stderr, "lens_partition: cannot start worker %d\n", i);
      return 1;
    }
    workers[i].id = fmt::format("{}:{}", host, workers[i].pid);
  }
  // Whatever happens below, no worker outlives the test (a stopped one is resumed first).
  struct Reaper {
    std::vector<Worker>& ws;
    ~Reaper() {
      for (auto& w : ws) {
        if (w.pid > 0 && !w.exit_code) {
          ::kill(w.pid, SIGCONT);
          w.exit_code = lens::test::kill_and_wait(w.pid, SIGKILL);
        }
      }
    }
  } reaper{workers};
  std::vector<std::string> failures;
  auto check = [&](bool ok, const std::string& what) {
    if (!ok) failures.push_back(what);
    say(fmt::format("{} {}", ok ? "ok  " : "FAIL", what));
  };
  const auto deadline = Clock::now() + 240s;

  // ---- cut the victim off once it holds claims, a tenth of the way in. A worker claims a
  // page and reads it in the next statement, on one thread: claims older than half a second
  // were certainly read, so it keeps their old text in memory. Wait until it holds a few.
  // The victim is whichever worker first holds a few such claims (which one gets work
  // first depends on the machine).
  int k_victim = -1;
  const bool busy = lens::test::wait_until(
      [&] {
        if (number(*db, "SELECT count(*) FROM message_embeddings") < corpus.eligible / 10) return false;
        auto rows = db->query(
            "SELECT worker, count(*) FROM embedding_claims WHERE claimed_at < now() - interval '0.5 second' "
            "GROUP BY worker ORDER BY 2 DESC LIMIT 1");
        if (!rows || rows->empty() || std::stoll(*(*rows)[0][1]) < 3) return false;
        for (int i = 0; i < k_workers; ++i)
          if (workers[i].id == *(*rows)[0][0]) k_victim = i;
        return k_victim >= 0;
      },
      60s, 5ms);
  if (!busy) {
    say("no worker held claims older than half a second a tenth of the way in");
    dir.keep();
    return 1;
  }
  Worker& victim = workers[k_victim];
  const std::string victim_claims =
      fmt::format("SELECT count(*) FROM embedding_claims WHERE worker = '{}'", victim.id);
  const auto cut_at = Clock::now();
  if (netns) {
    if (sh(fmt::format("ip link set {} down", server_link(o.prefix, k_victim))) != 0) return 1;
    say(fmt::format("link of worker {} DOWN", k_victim));
  } else {
    ::kill(victim.pid, SIGSTOP);
    say(fmt::format("worker {} SIGSTOP", k_victim));
  }
  std::this_thread::sleep_for(300ms);  // a commit already on its way lands first

  // Of those, the ones no transaction of its own holds (a commit interrupted by the cut
  // keeps its locks until it comes back), oldest first.
  std::vector<std::string> edited;
  {
    auto rows = db->query(
        fmt::format("SELECT user_message_id::text FROM embedding_claims WHERE worker = '{}' AND claimed_at < "
                    "now() - interval '0.8 second' ORDER BY claimed_at LIMIT 6 FOR UPDATE SKIP LOCKED",
                    victim.id));
    if (!rows) throw std::runtime_error(db->last_error());
    for (const auto& r : *rows)
      edited.push_back(*r[0]);
  }
  say(fmt::format("the victim holds {} claims; editing {} of them", number(*db, victim_claims),
                  edited.size()));
  check(!edited.empty(), "the cut-off worker held claims to take over and edit");
  if (auto e = db->exec(fmt::format("UPDATE messages SET content = content || ' [edited while worker {} was "
                                    "cut off]', updated_at = now() "
                                    "WHERE id IN ({})",
                                    k_victim, sql_list(edited)));
      !e.empty()) {
    throw std::runtime_error("editing: " + e);
  }
  // The others take the claims over when the lease ends and embed the new text. The bound is
  // generous: on a loaded 2-core machine a taker can need a minute for a page of claims (the
  // test failed at 20 s in a full ctest -j2 beside builds); --unavailable-after 300 keeps the
  // cut-off worker from giving up on its provider meanwhile.
  const std::string rewritten = fmt::format(
      "SELECT count(*) FROM messages m JOIN message_embeddings e ON e.user_message_id = m.id "
      "WHERE m.id IN ({}) AND e.source_version >= m.updated_at",
      sql_list(edited));
  const bool taken_over = lens::test::wait_until(
      [&] { return number(*db, rewritten) == static_cast<std::int64_t>(edited.size()); }, 120s, 50ms);
  const double cut_seconds = std::chrono::duration<double>(Clock::now() - cut_at).count();
  check(taken_over,
        fmt::format("the other workers took over and embedded the {} edited exchanges ({:.1f} s cut, "
                    "lease {} s)",
                    edited.size(), cut_seconds, k_lease_seconds));
  if (netns) {
    (void)sh(fmt::format("ip link set {} up", server_link(o.prefix, k_victim)));
    say(fmt::format("link of worker {} UP", k_victim));
  } else {
    ::kill(victim.pid, SIGCONT);
    say(fmt::format("worker {} SIGCONT", k_victim));
  }

  // ---- all finish
  for (auto& w : workers) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    w.exit_code = lens::test::wait_exit(w.pid, std::max(left, std::chrono::milliseconds(1000)));
  }
  json stats[k_workers];
  std::int64_t sum_embedded = 0, sum_fenced = 0;
  for (int i = 0; i < k_workers; ++i) {
    const auto& w = workers[i];
    const std::string out = lens::test::slurp(w.out);
    stats[i] = json::parse(out, nullptr, false);
    check(*w.exit_code == 0 && !stats[i].is_discarded(),
          fmt::format("worker {} exited {} with its summary", i, *w.exit_code));
    if (stats[i].is_discarded()) continue;
    const auto& s = stats[i]["stats"];
    sum_embedded += s.value("embedded", 0);
    sum_fenced += s.value("fenced", 0);
    say(fmt::format("worker {}: {}", i, s.dump()));
    // What the run row holds is what the worker counted: fenced writes are not in it.
    const auto stored = number(
        *db, fmt::format("SELECT embedded FROM embedding_runs WHERE id = {}", stats[i].value("run_id", 0)));
    check(stored == s.value("embedded", -1),
          fmt::format("worker {}: embedding_runs.embedded {} = its summary's", i, stored));
    const auto stored_fenced = number(
        *db, fmt::format("SELECT fenced FROM embedding_runs WHERE id = {}", stats[i].value("run_id", 0)));
    check(stored_fenced == s.value("fenced", -1),
          fmt::format("worker {}: embedding_runs.fenced {} = its summary's", i, stored_fenced));
    check(s.value("failed", -1) == 0, fmt::format("worker {}: nothing recorded as failed", i));
  }
  const std::int64_t victim_fenced =
      stats[k_victim].is_discarded() ? 0 : stats[k_victim]["stats"].value("fenced", 0);
  check(victim_fenced >= 1, fmt::format("the cut-off worker's late writes were fenced ({})", victim_fenced));
  check(lens::test::older_overwrites(*db) == 0,
        "no row was ever replaced by an older source_version (audit trigger)");
  const auto answered = provider.stat("ok_inputs");
  check(
      sum_embedded >= corpus.eligible && sum_embedded + sum_fenced <= answered,
      fmt::format("counters add up: eligible {} <= embedded {}; embedded + fenced {} <= inputs the provider "
                  "answered {}",
                  corpus.eligible, sum_embedded, sum_embedded + sum_fenced, answered));

  // ---- right after the workers: every vector is that of the current text
  lens::verify::VerifyOptions vo;
  vo.db = admin_url;
  vo.provider = "supermind";
  vo.model = k_model;
  vo.dimensions = k_dimensions;
  const auto report = lens::verify::verify(vo);
  check(report.ok() && report.eligible == corpus.eligible && report.failures == 0,
        fmt::format("the verifier passes: {} rows ok of {}, {} eligible, {} failures, problems {}",
                    report.rows_ok, report.rows, report.eligible, report.failures,
                    report.problems.empty() ? "none" : report.problems.front()));
  {
    std::vector<std::string> args = {"run", "--db", admin_url};
    for (const auto& a : provider.provider_args(k_model))
      args.push_back(a);
    for (const auto& a : {"--dimensions", "32", "--quiet", "--json"})
      args.push_back(a);
    auto last = lens::test::run_lens(args, dir / "last", env);
    const json j = json::parse(last.out, nullptr, false);
    check(
        last.exit_code == 0 && !j.is_discarded() && j["stats"]["embedded"] == 0 && j["stats"]["failed"] == 0,
        "a last run finds nothing to do (no stale row)");
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - g_started).count();
  check(seconds < 280, fmt::format("done in {:.0f} s", seconds));
  if (!failures.empty()) {
    for (int i = 0; i < k_workers; ++i) {
      const std::string err = lens::test::slurp(workers[i].err);
      std::fprintf(stderr, "---- worker %d stderr (tail)\n%s\n", i,
                   err.substr(err.size() > 2000 ? err.size() - 2000 : 0).c_str());
    }
    dir.keep();
    say(fmt::format("FAILED ({} checks); files kept in {}", failures.size(), dir.path()));
    return 1;
  }
  if (o.keep) dir.keep();
  say("passed");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    o = parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr,
                 "lens_partition: %s\nusage: lens_partition --mode sigstop|netns [--exchanges N] [--keep]\n",
                 e.what());
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  if (o.mode == "netns" && !o.inner) return run_outer(argc, argv);
  try {
    return run_scenario(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lens_partition: %s\n", e.what());
    return 1;
  }
}
