// run_pipeline: opens the run, wires the reader and writer threads and the dispatcher on
// the calling thread through two bounded queues, then closes the run.
#include "pipeline/pipeline.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "pipeline/dispatcher.h"
#include "pipeline/progress_meter.h"
#include "pipeline/reader.h"
#include "pipeline/store_retry.h"
#include "pipeline/writer.h"
#include "util/log.h"

namespace lens::pipeline {

using Clock = std::chrono::steady_clock;

RunOutcome run_pipeline(const RunOptions& options, RunDeps& deps) {
  const auto started = Clock::now();
  RunOutcome outcome;
  RunState state(deps.stop, deps.observer);
  if (!options.dry_run) {
    auto run_id = with_store_retries(
        [&] {
          return deps.writer.begin_run(
              {options.scope.provider, options.scope.model, deps.run_arguments, deps.worker});
        },
        "recording the run", observed_by(state.observer()));
    if (!run_id) {
      outcome.fatal = run_id.error();
      return outcome;
    }
    outcome.run_id = *run_id;
  }
  ProgressMeter meter(deps.progress, options.progress_interval, options.model.usd_per_million_tokens,
                      started);
  if (deps.progress && !options.follow) {
    // Only sizes the progress bar: without it the run goes on with an unknown total.
    auto total =
        with_store_retries([&] { return deps.reader.count_pending(options.scope); }, "counting pending work",
                           observed_by(state.observer(), StoreRetryPolicy::best_effort()));
    if (total) meter.set_total(options.limit ? std::min(*total, *options.limit) : *total);
  }

  WorkQueue work(std::max<std::size_t>(options.batch_size * 4, 1024));
  ResultQueue results(4096);
  Reader reader(options, deps.reader, deps.tokenizer, state, work, results);
  Dispatcher dispatcher(options, deps.provider, state, results);
  auto gauges = [&] {
    ProgressMeter::Gauges g;
    g.stats = state.counters.snapshot();
    // A dry run reports once, at the end, when the reader's tally is final.
    g.handled = options.dry_run ? reader.tally().exchanges
                                : g.stats.embedded + g.stats.unchanged + g.stats.failed + g.stats.fenced;
    g.in_flight = dispatcher.in_flight();
    g.tpm_limit = dispatcher.rate().tpm_limit();
    g.tpm_limit_from_server = dispatcher.rate().tpm_limit_from_server();
    return g;
  };
  auto observe = [&] {
    const auto& rate = dispatcher.rate();
    state.observer().on_gauges({dispatcher.in_flight(), rate.concurrency_limit(), rate.rpm_limit(),
                                rate.tpm_limit(), state.outstanding.load()});
  };

  if (options.dry_run) {
    reader.run();  // nothing to dispatch or write: the tally is the result
  } else {
    Writer writer(options, deps.writer, outcome.run_id, state, results);
    std::thread reader_thread([&] { reader.run(); });
    std::thread writer_thread([&] { writer.run(); });
    // --follow: idle passes print nothing; a heartbeat at most every options.heartbeat.
    std::int64_t reported_handled = -1;
    auto reported_at = Clock::now();
    (void)dispatcher.run(work, [&] {
      observe();
      if (!meter.due()) return;
      auto g = gauges();
      const auto now = Clock::now();
      if (options.follow && g.handled == reported_handled && now - reported_at < options.heartbeat) return;
      reported_handled = g.handled;
      reported_at = now;
      meter.report(g, false);
    });
    work.close();  // unblocks a reader still pushing after a stop or a fatal error
    reader_thread.join();
    results.close();
    writer_thread.join();
    observe();
  }
  // After a stop request the closing calls share options.drain_timeout for a database that
  // is gone: a service manager's stop timeout must not run out while they wait.
  const auto closing_deadline = Clock::now() + options.drain_timeout;
  const auto closing = [&](StoreRetryPolicy policy) {
    if (state.stopping()) {
      policy.budget =
          std::max(std::chrono::milliseconds(0),
                   std::chrono::duration_cast<std::chrono::milliseconds>(closing_deadline - Clock::now()));
      policy.give_up_when = [closing_deadline] { return Clock::now() >= closing_deadline; };
    }
    return observed_by(state.observer(), policy);
  };
  // Hand back what this worker claimed but did not write, so other workers need not
  // wait for the lease to expire. Best effort: an expired lease does the same later.
  for (store::Store* s : {&deps.reader, &deps.writer}) {
    auto released = with_store_retries([&] { return s->release_claims(); }, "releasing claims",
                                       closing(StoreRetryPolicy::best_effort()));
    if (!released) util::log_warn("releasing claims: {}", released.error().message);
  }

  outcome.stats = state.counters.snapshot();
  outcome.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  outcome.fatal = state.fatal();
  // Complete: read to the end (or the limit) and everything read is committed; a stop that
  // let the last requests finish is no loss. --follow passes are only polling: a stop ends
  // the session completed when everything read so far is committed (what it had not read
  // yet is new work, like messages that arrive after it).
  const bool complete = (options.follow || reader.finished()) && state.outstanding.load() == 0;
  outcome.interrupted = state.stopping() && !outcome.fatal && !complete;
  if (options.dry_run) {
    outcome.dry_run = reader.tally();
    outcome.dry_run->usd =
        static_cast<double>(outcome.dry_run->tokens) * options.model.usd_per_million_tokens / 1e6;
  }
  meter.report(gauges(), true);
  // A pass read every input under this definition and all of it is committed: a later run
  // need not hash every input again. Not before (a crash mid-way must redo it).
  if (!options.dry_run && !options.record_input_definition.empty() && !outcome.fatal &&
      !outcome.interrupted && reader.finished() && !reader.limit_reached() &&
      !reader.recorded_input_definition() && state.outstanding.load() == 0) {
    auto recorded = with_store_retries(
        [&] {
          return deps.writer.record_input_definition(options.scope.provider, options.scope.model,
                                                     options.record_input_definition);
        },
        "recording the input definition", observed_by(state.observer(), StoreRetryPolicy::best_effort()));
    if (!recorded)
      util::log_warn("recording the input definition: {} (the next run hashes every input again)",
                     recorded.error().message);
  }
  // The queued changes the last pass took are done with once its work is committed; a run
  // cut short (or one that recorded failures) leaves them for the next one.
  if (!options.dry_run && !reader.change_pass().empty() && !outcome.fatal && !outcome.interrupted &&
      reader.finished() && !reader.limit_reached() && state.outstanding.load() == 0) {
    auto dropped = with_store_retries([&] { return deps.writer.drop_changes(reader.change_pass()); },
                                      "dropping queued changes",
                                      observed_by(state.observer(), StoreRetryPolicy::best_effort()));
    if (!dropped)
      util::log_warn("dropping queued changes: {} (the next run hashes them again)", dropped.error().message);
  }
  if (!options.dry_run) {
    const core::RunStatus status = outcome.fatal         ? core::RunStatus::failed
                                   : outcome.interrupted ? core::RunStatus::interrupted
                                                         : core::RunStatus::completed;
    auto finished = with_store_retries(
        [&] {
          return deps.writer.finish_run(outcome.run_id, status, outcome.stats,
                                        outcome.fatal ? outcome.fatal->message : std::string());
        },
        "recording the end of the run", closing({}));
    if (!finished && !outcome.fatal) outcome.fatal = finished.error();
  }
  return outcome;
}

}  // namespace lens::pipeline
