// The one rule both stores follow when the database refuses a batch: isolate the rows it
// refuses, record each as a store_rejected failure, commit everything else.
#pragma once

#include <functional>
#include <string_view>

#include "store/store.h"
#include "util/log.h"

namespace lens::store {

// Writes `batch` with `write_once` (one transaction, all or nothing). When that fails
// with bad_input (a row the table refuses: a CHECK, a constraint trigger, a vector of the
// wrong dimension for a pgvector column; store.h lists the codes) the batch is redone item
// by item, each row in its own transaction; a row still refused becomes a failure with
// reason store_rejected (the database's message as detail), committed on its own, so a
// poison item is recorded once and not handed out again (unless edited or retried). The
// touches, failures and progress of the batch are then committed together. Any other
// error (an undefined column, a missing privilege: the schema, not the row) is returned as
// it is, so the run stops instead of recording every row as refused.
// On success: every item of `batch` is written, recorded or fenced, and what was fenced
// (the one-by-one writes' and the rest's). On failure: the first error
// that is not a refused row (transient: redoing the whole batch is safe, every write is
// an upsert), or permanent when the failure record of a refused row is refused too; items
// committed before it stay committed.
[[nodiscard]] inline util::Result<WriteReport> write_isolating_refused_rows(
    const WriteBatch& batch, std::string_view backend,
    const std::function<util::Result<WriteReport>(const WriteBatch&)>& write_once) {
  auto s = write_once(batch);
  if (s || s.error().code != util::ErrorCode::bad_input) return s;
  WriteReport report;
  util::log_warn("{}: batch of {} rows refused ({}); writing its items one by one", backend,
                 batch.rows.size(), s.error().message);
  for (const auto& row : batch.rows) {
    WriteBatch one;
    one.provider = batch.provider;
    one.model = batch.model;
    one.rows.push_back(row);
    auto r = write_once(one);
    if (r) {
      report += *r;
      continue;
    }
    if (r.error().code != util::ErrorCode::bad_input) return r;
    WriteBatch poison;
    poison.provider = batch.provider;
    poison.model = batch.model;
    poison.failures.push_back(core::Failure{row.user_message_id, core::FailureReason::store_rejected,
                                            r.error().message, row.source_version});
    auto f = write_once(poison);
    if (!f) {
      // Nothing more to isolate: the record of the refusal is refused too.
      if (f.error().code == util::ErrorCode::bad_input) f.error().code = util::ErrorCode::permanent;
      return f;
    }
    report += *f;
  }
  WriteBatch rest = batch;
  rest.rows.clear();
  // The rest commits the run's progress: without the rows fenced one by one above.
  rest.progress.embedded -= report.fenced_rows;
  rest.progress.fenced += report.fenced_rows;
  auto r = write_once(rest);
  if (!r) {
    if (r.error().code == util::ErrorCode::bad_input) r.error().code = util::ErrorCode::permanent;
    return r;
  }
  report += *r;
  return report;
}

}  // namespace lens::store
