// One writer per SQLite file: `run` (and `init`) hold an exclusive OS lock (flock) on the
// sidecar file `<db>.lens-embed.lock` for as long as their store lives, so a second `run`
// on the same file waits for the first instead of failing on "database is locked" or
// embedding what the first is already sending. Read-only opens never take it.
#pragma once

#include <memory>
#include <string>

#include "util/result.h"

namespace lens::store::sqlite {

// The holder of the lock, as written in the lock file: "pid host started_at".
struct LockHolder {
  std::string pid = "?";
  std::string host = "?";
  std::string started_at = "?";
};

// The sidecar path of `db_path`.
[[nodiscard]] std::string writer_lock_path(const std::string& db_path);

// A handle on the lock of one file. The lock is held while any handle of this process for
// the file lives (the stores of one run, reader and writer, share it: flock would make
// them wait for each other otherwise). Thread-safe.
class WriterLock {
 public:
  // Takes the lock of `db_path` for this process, or shares the one it holds already. When
  // another process holds it: with `wait`, logs one line naming the holder and blocks until
  // it is released; without, fails at once.
  // On success: a handle; the lock is held until the last handle of this process for the
  // file goes, and the lock file says "pid host started_at" of this process. On failure: transient "... is
  // being written by the run of pid P on host H (started T)" (not waiting), or configuration when the lock
  // file cannot be created or locked (a read-only folder).
  [[nodiscard]] static util::Result<std::unique_ptr<WriterLock>> acquire(const std::string& db_path,
                                                                         bool wait);

  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;
  ~WriterLock();  // the last handle closes the file, which releases the lock

 private:
  explicit WriterLock(std::string key) : key_(std::move(key)) {}
  std::string key_;
};

// What the lock file of `db_path` says about its holder (fields "?" when unreadable).
[[nodiscard]] LockHolder read_lock_holder(const std::string& db_path);

}  // namespace lens::store::sqlite
