// The single-writer lock of a SQLite file; see writer_lock.h.
#include "store/sqlite/writer_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fmt/core.h>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "util/log.h"

namespace lens::store::sqlite {
namespace {

using util::ErrorCode;
using util::fail;

// The locks this process holds, by absolute lock path, with their number of handles: flock
// belongs to an open file, so a second open of the same file in this process would wait
// for the first.
struct Held {
  int fd = -1;
  int handles = 0;
};
std::mutex g_mutex;
std::map<std::string, Held>& held() {
  static std::map<std::string, Held> m;
  return m;
}

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string host_name() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) return "localhost";
  return host;
}

LockHolder parse_holder(const std::string& text) {
  LockHolder h;
  std::istringstream in(text);
  std::string pid, host, started;
  if (in >> pid >> host >> started) {
    h.pid = pid;
    h.host = host;
    h.started_at = started;
  }
  return h;
}

std::string read_fd(int fd) {
  std::string out;
  char buf[512];
  off_t at = 0;
  for (;;) {
    const ssize_t n = pread(fd, buf, sizeof buf, at);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    at += n;
  }
  return out;
}

// The holder writes its line right after taking the lock: give it a moment.
LockHolder holder_of(int fd) {
  for (int i = 0; i < 20; ++i) {
    auto h = parse_holder(read_fd(fd));
    if (h.pid != "?") return h;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return {};
}

int lock_blocking(int fd) {
  int rc;
  do {
    rc = flock(fd, LOCK_EX);
  } while (rc != 0 && errno == EINTR);
  return rc;
}

}  // namespace

std::string writer_lock_path(const std::string& db_path) {
  return db_path + ".lens-embed.lock";
}

LockHolder read_lock_holder(const std::string& db_path) {
  const int fd = open(writer_lock_path(db_path).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  auto h = parse_holder(read_fd(fd));
  close(fd);
  return h;
}

util::Result<std::unique_ptr<WriterLock>> WriterLock::acquire(const std::string& db_path, bool wait) {
  const std::string path = writer_lock_path(db_path);
  std::error_code ec;
  std::string key = std::filesystem::absolute(path, ec).lexically_normal().string();
  if (ec) key = path;
  // Held across the wait: another thread of this process asking for the same file must
  // share our lock, not open a second one that would wait for it forever.
  std::lock_guard guard(g_mutex);
  if (auto it = held().find(key); it != held().end()) {
    ++it->second.handles;
    return std::unique_ptr<WriterLock>(new WriterLock(key));
  }

  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return fail(ErrorCode::configuration,
                fmt::format("sqlite: cannot create the writer lock {}: {}", path, std::strerror(errno)));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) {
      const int err = errno;
      close(fd);
      return fail(ErrorCode::configuration,
                  fmt::format("sqlite: cannot lock {}: {}", path, std::strerror(err)));
    }
    const LockHolder h = holder_of(fd);
    if (!wait) {
      close(fd);
      return fail(ErrorCode::transient,
                  fmt::format("sqlite: {} is being written by the run of pid {} on host {} (started {}); "
                              "without --no-wait this run would wait for it",
                              db_path, h.pid, h.host, h.started_at));
    }
    util::log_info("sqlite: waiting for the run of pid {} on host {} (started {}) to finish with {}", h.pid,
                   h.host, h.started_at, db_path);
    if (lock_blocking(fd) != 0) {
      const int err = errno;
      close(fd);
      return fail(ErrorCode::configuration,
                  fmt::format("sqlite: cannot lock {}: {}", path, std::strerror(err)));
    }
  }
  const std::string line = fmt::format("{} {} {}\n", getpid(), host_name(), now_utc());
  // Best effort: the line is only for the message of a process that waits.
  if (ftruncate(fd, 0) == 0) (void)!pwrite(fd, line.data(), line.size(), 0);
  held()[key] = Held{fd, 1};
  return std::unique_ptr<WriterLock>(new WriterLock(key));
}

WriterLock::~WriterLock() {
  std::lock_guard guard(g_mutex);
  auto& m = held();
  auto it = m.find(key_);
  if (it == m.end() || --it->second.handles > 0) return;
  close(it->second.fd);
  m.erase(it);
}

}  // namespace lens::store::sqlite
