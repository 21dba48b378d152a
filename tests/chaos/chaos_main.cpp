// lens_chaos: runs lens-embed against a faulty stand-in provider while SIGKILLing it at
// random moments (and crash-restarting PostgreSQL), reruns until done, then verifies.
// Used by ctest at 20k exchanges, by bench/chaos/run.sh at >= 100k and by bench/chaos/soak.sh
// at 10^6 (with pauses: a worker SIGSTOPped past its lease; kills and PostgreSQL restarts on
// a clock; and a real partition: worker 0 in a network namespace whose link is cut while
// the others take over its claims and some of the messages it holds are edited).
#include <signal.h>
#include <unistd.h>

#include <fmt/core.h>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "chaos_options.h"
#include "partition_link.h"
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

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* k_api_key = "sk-chaos-0d1e2f3a4b5c6d7e8f90";
constexpr const char* k_model = "text-embedding-3-small";

// SIGINT/SIGTERM: end the chaos phase as a time-out does, so that the workers, PostgreSQL
// and the network namespace are removed on the way out.
volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_interrupt(int) {
  g_interrupted = 1;
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  using lens::chaos::k_usage;
  using lens::chaos::Options;
  Options o;
  try {
    o = lens::chaos::parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lens_chaos: %s\n%s", e.what(), k_usage);
    return 2;
  }
  if (o.seed == 0) o.seed = std::random_device{}() | 1ULL;
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
  const auto started = Clock::now();
  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> u(0, 1);
  auto say = [&](const std::string& s) {
    std::fprintf(stderr, "[chaos %6.1fs] %s\n", seconds_since(started), s.c_str());
  };

  char tmpl[] = "/tmp/lens-chaos.XXXXXX";
  if (!::mkdtemp(tmpl)) return 2;
  const std::string dir = tmpl;
  say(fmt::format("seed {} dir {} db {} workers {} exchanges {}", o.seed, dir, o.db, o.workers, o.exchanges));

  std::unique_ptr<lens::chaos::PartitionLink> link;
  if (o.partition_seconds > 0) {
    std::string error;
    link = lens::chaos::PartitionLink::create(error);
    if (!link) {
      std::fprintf(stderr, "lens_chaos: FAILED: %s\n", error.c_str());
      return 1;
    }
    // PostgreSQL serves the worker in the namespace too.
    ::setenv("PG_TEST_LISTEN_ADDRESSES", "*", 1);
    ::setenv("PG_TEST_TRUST_CIDR", lens::chaos::k_partition_cidr, 1);
  }
  std::unique_ptr<lens::test::PgServer> pg;
  std::string url = "sqlite:" + dir + "/chaos.db";
  if (o.db == "postgres") {
    pg = lens::test::PgServer::start(dir + "/pg.env");
    if (!pg->ok()) {
      std::fprintf(stderr, "lens_chaos: %s\n", pg->error().c_str());
      return 1;
    }
    url = pg->url();
  }
  const lens::test::Env env = {{"SUPERMIND_API_KEY", k_api_key},
                               // A SIGKILLed worker's claims go to the others after this
                               // lease (default 300 s).
                               {"LENS_CLAIM_LEASE_SECONDS", "6"}};

  // ---- the corpus (the Lens tables first: lens-embed never creates them)
  if (auto db = lens::test::Db::open(url); !db || !lens::test::create_source_schema(*db).empty()) {
    std::fprintf(stderr, "lens_chaos: cannot create the source tables in %s\n", url.c_str());
    return 1;
  }
  auto init = lens::test::run_lens({"init", "--db", url}, dir, env);
  if (init.exit_code != 0) {
    std::fprintf(stderr, "lens_chaos: init failed: %s%s\n", init.out.c_str(), init.err.c_str());
    return 1;
  }
  if (link) {
    auto db = lens::test::Db::open(url);
    if (auto e = lens::test::install_fence_audit(*db); !e.empty()) {
      std::fprintf(stderr, "lens_chaos: audit trigger: %s\n", e.c_str());
      return 1;
    }
  }
  lens::test::CorpusOptions co;
  co.exchanges = o.exchanges;
  co.seed = o.seed;
  const auto corpus = lens::test::make_corpus(co);
  {
    auto db = lens::test::Db::open(url);
    if (!db) return 1;
    if (auto e = db->insert(corpus.messages); !e.empty()) {
      std::fprintf(stderr, "lens_chaos: loading the corpus: %s\n", e.c_str());
      return 1;
    }
  }
  say(fmt::format("corpus: {} messages, {} exchanges, {} long, {} poisoned, {} blank/NULL users",
                  corpus.messages.size(), corpus.eligible, corpus.long_inputs, corpus.poisoned.size(),
                  corpus.ineligible_users));

  // ---- the faulty provider (issue 6's mix); the rpm bucket of a few requests makes
  // every fresh worker meet a burst of 429s.
  lens::stand_in::StandInOptions so;
  so.p_500 = 0.03;
  so.p_502 = 0.01;
  so.p_reset = 0.01;
  so.p_hang = 0.005;
  so.p_malformed = 0.005;
  so.p_short = 0.005;
  so.p_nan = 0.002;
  so.p_429 = 0.005;
  so.shuffle = true;
  so.rpm = o.rpm;
  so.burst_seconds = 0.1;
  so.hang_ms = (o.timeout + 1) * 1000;
  so.reject_marker = lens::test::k_poison_marker;
  so.api_key = k_api_key;
  so.seed = o.seed;
  so.threads = 64;
  if (link) so.host = "0.0.0.0";
  lens::stand_in::StandInServer server(so);
  const int port = server.start();
  if (port <= 0) return 1;

  // Worker 0 behind the link reaches both servers at the link's address.
  const std::string linked_url =
      link ? fmt::format("postgresql://postgres@{}:{}/postgres", link->server_address(), pg->port()) : "";
  const std::string linked_base = link ? fmt::format("http://{}:{}/v1", link->server_address(), port) : "";
  std::vector<std::string> worker_args = {
      "run", "--db", url, "--provider", "supermind", "--base-url",
      fmt::format("http://127.0.0.1:{}/v1", port), "--model", k_model, "--dimensions",
      std::to_string(o.dimensions), "--timeout", std::to_string(o.timeout), "--batch-size",
      std::to_string(o.batch_size), "--max-attempts", "12", "--quiet", "--json",
      // The provider's own limits (rpm from its headers) are the only pacing.
      "--tpm", "0", "--rpm", "0"};

  // ---- chaos phase
  struct Slot {
    pid_t pid = -1;
    bool done = false;
    int starts = 0;
  };
  std::vector<Slot> slots(static_cast<std::size_t>(o.workers));
  auto start_slot = [&](std::size_t i) {
    auto args = worker_args;
    if (link && i == 0) {
      args[2] = linked_url;
      args[6] = linked_base;
      args.insert(args.end(), {"--unavailable-after", "600"});  // outlive the cut, as a service would
    }
    args.insert(args.end(), {"--log-file", fmt::format("{}/worker{}.log", dir, i)});
    lens::test::SpawnOptions so;
    so.out_path = fmt::format("{}/worker{}.out", dir, i);
    so.err_path = fmt::format("{}/worker{}.err", dir, i);
    so.append = true;  // a restarted worker adds to its predecessors' output
    so.env = env;
    if (link && i == 0) {
      args.insert(args.begin(), lens::test::lens_embed_binary());
      slots[i].pid = lens::test::spawn(link->inside(args), so);
    } else {
      slots[i].pid = lens::test::spawn_lens(args, so);
    }
    ++slots[i].starts;
  };
  for (std::size_t i = 0; i < slots.size(); ++i)
    start_slot(i);

  // Kills and the restart happen at random points of progress, spread over the run, so
  // they land while work is in flight whatever the speed of the machine.
  const double total = static_cast<double>(corpus.eligible);
  std::vector<double> kill_at;
  for (int k = 0; k < o.kills; ++k)
    kill_at.push_back(total * (0.04 + 0.8 * (k + 0.1 + 0.8 * u(rng)) / o.kills));
  std::vector<double> restart_at;
  for (int k = 0; k < o.pg_restarts; ++k)
    restart_at.push_back(total * (0.25 + 0.4 * (k + u(rng)) / o.pg_restarts));
  std::vector<double> pause_at;
  for (int k = 0; k < o.pauses; ++k)
    pause_at.push_back(total * (0.1 + 0.7 * (k + u(rng)) / o.pauses));
  std::size_t next_kill = 0, next_restart = 0, next_pause = 0;
  int kills_done = 0, kills_mid_run = 0, restarts_done = 0, crashes = 0, pauses_done = 0;
  pid_t paused_pid = -1;  // at most one worker stopped at a time
  auto pause_ends = Clock::now();
  auto resume_paused = [&] {
    if (paused_pid > 0) ::kill(paused_pid, SIGCONT);
    paused_pid = -1;
  };
  std::map<std::string, int> exits;
  std::vector<std::string> kill_log;
  auto last_kill = Clock::now(), last_restart = Clock::now(), partition_ends = Clock::now();
  bool link_cut = false;
  int partitions_done = 0;
  std::size_t edited_during_partition = 0;
  // SIGKILLs a random live worker (never the one whose link is cut: that is the partition's).
  auto kill_one = [&](double progress) {
    std::vector<std::size_t> live;
    for (std::size_t i = 0; i < slots.size(); ++i) {
      if (!slots[i].done && !(link_cut && i == 0)) live.push_back(i);
    }
    if (live.empty()) return;
    const std::size_t i = live[rng() % live.size()];
    if (slots[i].pid == paused_pid) resume_paused();  // SIGKILL ends a stopped process too
    const int code = lens::test::kill_and_wait(slots[i].pid, SIGKILL);
    ++exits[std::to_string(code)];
    ++kills_done;
    if (code == 128 + SIGKILL) ++kills_mid_run;
    kill_log.push_back(fmt::format("{:.0f}/{:.0f} worker {}", progress, total, i));
    say(fmt::format("SIGKILL worker {} at {:.0f}/{:.0f} (exit {})", i, progress, total, code));
    if (code == 0)
      slots[i].done = true;
    else
      start_slot(i);
  };
  auto progress_db = lens::test::Db::open(url);
  bool timed_out = false;
  auto last_report = Clock::now();
  auto last_poll = Clock::now();
  while (true) {
    bool all_done = true;
    for (std::size_t i = 0; i < slots.size(); ++i) {
      Slot& s = slots[i];
      if (s.done) continue;
      all_done = false;
      const auto code = lens::test::try_wait(s.pid);
      if (!code) continue;
      ++exits[std::to_string(*code)];
      if (*code == 0) {
        s.done = true;
        continue;
      }
      if (*code > 128 && *code != 128 + SIGKILL) {
        ++crashes;
        say(fmt::format("worker {} CRASHED with signal {}", i, *code - 128));
      }
      if (*code == 2) {
        say("worker exited 2 (usage/configuration): giving up");
        timed_out = true;
        break;
      }
      start_slot(i);  // rerun: what was committed stays, the rest is redone
    }
    if (all_done || timed_out) break;
    if (seconds_since(started) > o.max_seconds || g_interrupted) {
      say(g_interrupted ? "interrupted" : "time limit reached");
      timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (paused_pid > 0 && Clock::now() >= pause_ends) {
      say(fmt::format("SIGCONT pid {}", paused_pid));
      resume_paused();
    }
    // Counting rows costs the database a scan: at most four times a second.
    if (seconds_since(last_poll) < 0.25) continue;
    last_poll = Clock::now();
    const auto progress_text = progress_db->scalar(
        "SELECT (SELECT count(*) FROM message_embeddings) + (SELECT count(*) FROM embedding_failures)");
    if (!progress_text) continue;  // the database is down (restart): try again
    const double progress = std::stod(*progress_text);
    if (seconds_since(last_report) > 10) {
      last_report = Clock::now();
      say(fmt::format("progress {:.0f}/{:.0f}", progress, total));
    }
    // Clock-driven kills and restarts stop once every exchange has its row or failure: what
    // is left is each worker's walk to the end of its keyset, which a kill would restart.
    const bool work_left = progress < total;
    if (o.kill_every > 0) {
      if (work_left && seconds_since(last_kill) >= o.kill_every) {
        last_kill = Clock::now();
        kill_one(progress);
      }
    } else if (next_kill < kill_at.size() && progress >= kill_at[next_kill]) {
      kill_one(progress);
      ++next_kill;
    }
    if (link && !link_cut && partitions_done == 0 && !slots[0].done && slots[0].pid != paused_pid &&
        progress >= o.partition_at * total &&
        lens::chaos::read_claims(*progress_db, lens::chaos::worker_name(slots[0].pid)) >= 3) {
      edited_during_partition =
          lens::chaos::cut_and_edit(*link, *progress_db, lens::chaos::worker_name(slots[0].pid), say);
      link_cut = true;
      ++partitions_done;
      partition_ends = Clock::now() + std::chrono::milliseconds(static_cast<int>(o.partition_seconds * 1000));
    }
    if (link_cut && Clock::now() >= partition_ends) {
      link_cut = !link->restore();
      say(link_cut ? "could not restore the link of worker 0" : "link of worker 0 UP");
    }
    if (paused_pid < 0 && next_pause < pause_at.size() && progress >= pause_at[next_pause]) {
      for (std::size_t i = 0; i < slots.size(); ++i) {
        if (slots[i].done) continue;
        paused_pid = slots[i].pid;
        pause_ends = Clock::now() + std::chrono::milliseconds(static_cast<int>(o.pause_seconds * 1000));
        ::kill(paused_pid, SIGSTOP);
        ++pauses_done;
        say(fmt::format("SIGSTOP worker {} for {:.0f} s at {:.0f}/{:.0f}", i, o.pause_seconds, progress,
                        total));
        break;
      }
      ++next_pause;
    }
    if (pg && o.restart_every > 0) {
      if (work_left && seconds_since(last_restart) >= o.restart_every) {
        last_restart = Clock::now();
        say(fmt::format("PostgreSQL crash-restart at {:.0f}/{:.0f}", progress, total));
        if (pg->restart(1)) ++restarts_done;
      }
    } else if (pg && next_restart < restart_at.size() && progress >= restart_at[next_restart]) {
      say(fmt::format("PostgreSQL crash-restart at {:.0f}/{:.0f}", progress, total));
      if (pg->restart(1)) ++restarts_done;
      ++next_restart;
    }
  }
  resume_paused();
  if (link_cut) link->restore();
  for (auto& slot : slots) {  // cut short (time limit, interrupt): no worker outlives us
    if (!slot.done && slot.pid > 0 && !lens::test::try_wait(slot.pid))
      (void)lens::test::kill_and_wait(slot.pid, SIGKILL);
  }
  progress_db.reset();
  const double chaos_seconds = seconds_since(started);

  // ---- rerun until done: a run that finds nothing to do ends it
  int final_runs = 0;
  json last_final;
  bool done = false;
  while (!timed_out && final_runs < 10 && !done) {
    ++final_runs;
    auto args = worker_args;
    args.insert(args.end(), {"--log-file", dir + "/final.log"});
    const auto r = lens::test::run_lens(args, dir, env);
    last_final = json::parse(r.out, nullptr, false);
    ++exits[std::to_string(r.exit_code)];
    if (r.exit_code == 0 && !last_final.is_discarded() && last_final["stats"]["embedded"] == 0 &&
        last_final["stats"]["failed"] == 0) {
      done = true;
    } else if (r.exit_code != 0) {
      say(fmt::format("final run exited {}: {}", r.exit_code, r.err.substr(0, 500)));
    }
  }

  // ---- verify
  lens::verify::VerifyOptions vo;
  vo.db = url;
  vo.provider = "supermind";
  vo.model = k_model;
  vo.dimensions = o.dimensions;
  vo.allowed_reasons = {"context_length"};
  const auto report = lens::verify::verify(vo);
  const bool right_failures = report.failed_ids == corpus.poisoned;
  const bool right_counts = report.eligible == corpus.eligible && report.truncated_rows == corpus.long_inputs;

  json stats = json::parse(server.stats_json(), nullptr, false);
  server.stop();
  json faults = json::object();
  for (const auto& [k, v] : stats.items()) {
    if (k.starts_with("fault_") || k.starts_with("status_429") || k == "status_400_context") faults[k] = v;
  }
  // Late writes fenced, as reported by the runs that printed a summary (a SIGKILLed run
  // prints none): the workers' outputs are their runs' --json documents, one after another.
  std::int64_t fenced = 0;
  for (std::size_t i = 0; i < slots.size(); ++i) {
    std::istringstream in(lens::test::slurp(fmt::format("{}/worker{}.out", dir, i)));
    try {
      for (json j; in >> j;)
        fenced += j.value("/stats/fenced"_json_pointer, std::int64_t{0});
    } catch (const json::exception&) {
      // a document cut short by SIGKILL ends the scan of this file
    }
  }
  // Rows that a late write moved back to an older text (the audit trigger's record).
  std::int64_t older_overwrites = 0;
  if (link) {
    auto db = lens::test::Db::open(url);
    older_overwrites = db ? lens::test::older_overwrites(*db) : -1;
  }
  const bool ok = !timed_out && done && crashes == 0 && (o.kill_every > 0 || kills_done == o.kills) &&
                  pauses_done == o.pauses && (o.restart_every > 0 || restarts_done == o.pg_restarts) &&
                  (!link || (partitions_done == 1 && older_overwrites == 0)) && report.ok() &&
                  right_failures && right_counts;
  json summary = {{"ok", ok},
                  {"db", o.db},
                  {"workers", o.workers},
                  {"seed", o.seed},
                  {"exchanges", corpus.eligible},
                  {"messages", corpus.messages.size()},
                  {"long_inputs", corpus.long_inputs},
                  {"poisoned", corpus.poisoned.size()},
                  {"seconds_chaos", chaos_seconds},
                  {"seconds_total", seconds_since(started)},
                  {"sigkills", kills_done},
                  {"sigkills_mid_run", kills_mid_run},
                  {"kill_points", kill_log},
                  {"pg_restarts", restarts_done},
                  {"pauses", pauses_done},
                  {"pause_seconds", o.pause_seconds},
                  {"fenced_reported", fenced},
                  {"kill_every_seconds", o.kill_every},
                  {"restart_every_seconds", o.restart_every},
                  {"partitions", partitions_done},
                  {"partition_seconds", o.partition_seconds},
                  {"edited_during_partition", edited_during_partition},
                  {"older_overwrites", older_overwrites},
                  {"crashes", crashes},
                  {"worker_exit_codes", exits},
                  {"final_runs", final_runs},
                  {"final_run", last_final},
                  {"requests", stats.value("requests", 0)},
                  {"faults", faults},
                  {"right_failures", right_failures},
                  {"right_counts", right_counts},
                  {"verification", json::parse(report.to_json())}};
  const std::string text = summary.dump(2, ' ', false, json::error_handler_t::replace);
  std::printf("%s\n", text.c_str());
  if (!o.summary.empty()) {
    if (FILE* f = std::fopen(o.summary.c_str(), "a")) {
      std::fprintf(f, "%s\n", summary.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
      std::fclose(f);
    }
  }
  if (!ok) {
    for (std::size_t i = 0; i < slots.size(); ++i) {
      const std::string err = lens::test::slurp(fmt::format("{}/worker{}.err", dir, i));
      std::fprintf(stderr, "---- worker %zu stderr (tail)\n%s\n", i,
                   err.substr(err.size() > 3000 ? err.size() - 3000 : 0).c_str());
    }
    say("FAILED; files kept in " + dir);
  }
  pg.reset();
  if (ok && !o.keep) fs::remove_all(dir);
  return ok ? 0 : 1;
}
