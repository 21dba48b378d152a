// Child processes for tests: the environment they get, starting one, waiting for it (with
// a timeout), running one to completion with its output captured, and scratch folders.
// Not thread-safe; a test calls these from its own thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace lens::test {

using Env = std::map<std::string, std::string>;

// The whole file, or "" when it cannot be read.
std::string slurp(const std::string& path);

// Environment of a child: ours without anything that configures lens-embed or libpq
// (LENS_*, DATABASE_URL, POSTGRES_*, PG*, *_API_KEY, *_BASE_URL, SUPERMIND_*, OPENAI_*),
// with NO_PROXY for the loopback servers of the tests and LENS_DATA_DIR set to the
// repository's data/, then `extra` (which wins over all of it).
std::vector<std::string> child_environment(const Env& extra);

struct SpawnOptions {
  std::string cwd;       // "" = ours
  std::string out_path;  // stdout goes here ("" = /dev/null)
  std::string err_path;  // stderr goes here ("" = /dev/null)
  bool append = false;   // append to the files instead of truncating them
  Env env;               // added to child_environment()
};

// Starts argv[0] (a path, or a name looked up in PATH) with stdin from /dev/null. Returns the pid, or -1 when
// it could not start.
pid_t spawn(const std::vector<std::string>& argv, const SpawnOptions& options);

// What wait_exit() returns for a child that outlived its timeout (it is SIGKILLed and
// reaped first, so no process outlives the test).
inline constexpr int k_timed_out = -2;
// Long enough for any one lens-embed invocation of the suite under ASan on a busy
// machine; short of ctest's TIMEOUT, so a hang is reported here, with its output.
inline constexpr std::chrono::seconds k_default_timeout{280};

// Waits for the child: its exit code, 128 + signal when a signal ended it, k_timed_out
// (see above), or -1 when it is not our child.
int wait_exit(pid_t pid, std::chrono::milliseconds timeout = k_default_timeout);
// The exit code (as wait_exit) when the child has ended, nullopt while it runs.
std::optional<int> try_wait(pid_t pid);
// Sends `signal` and waits for the child to end.
int kill_and_wait(pid_t pid, int signal);

struct Output {
  int exit_code = -1;  // as wait_exit(); -1 when the program could not start
  std::string out, err;
};
// Runs argv to completion in `cwd` (created if missing; the captured stdout and stderr
// are kept there as run-N.out and run-N.err).
Output run(const std::vector<std::string>& argv, const std::string& cwd, const Env& env = {},
           std::chrono::milliseconds timeout = k_default_timeout);

// lens-embed (lens_embed_binary()) with `args`, as run() and spawn() above.
Output run_lens(const std::vector<std::string>& args, const std::string& cwd, const Env& env = {},
                std::chrono::milliseconds timeout = k_default_timeout);
pid_t spawn_lens(const std::vector<std::string>& args, const SpawnOptions& options);

// Polls `condition` every `every` until it holds (true) or `timeout` passes (false).
// For waiting on another process's progress instead of sleeping a guessed time.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds every = std::chrono::milliseconds(20));

// A fresh folder under $TMPDIR (or /tmp) named lens_<name>_<pid>_<n>; removed with
// everything in it when this goes, unless keep() was called (say, on a test failure).
class TempDir {
 public:
  explicit TempDir(const std::string& name);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }
  // The path of `file` inside.
  [[nodiscard]] std::string operator/(const std::string& file) const { return path_ + "/" + file; }
  void keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

}  // namespace lens::test
