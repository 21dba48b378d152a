// Child processes for tests (see process.h).
#include "support/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/paths.h"

extern char** environ;

namespace lens::test {

namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> child_environment(const Env& extra) {
  Env all = {{"NO_PROXY", "127.0.0.1,localhost"},
             {"no_proxy", "127.0.0.1,localhost"},
             {"LENS_DATA_DIR", source_data_dir()}};
  for (const auto& [k, v] : extra)
    all[k] = v;
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string_view v = *e;
    const std::string_view name = v.substr(0, v.find('='));
    if (name.starts_with("LENS_") || name.starts_with("POSTGRES_") || name.starts_with("PG") ||
        name.starts_with("SUPERMIND_") || name.starts_with("OPENAI_") || name == "DATABASE_URL" ||
        name.ends_with("_API_KEY") || name.ends_with("_BASE_URL")) {
      continue;
    }
    if (all.contains(std::string(name))) continue;
    env.emplace_back(v);
  }
  for (const auto& [k, v] : all)
    env.push_back(k + "=" + v);
  return env;
}

pid_t spawn(const std::vector<std::string>& argv, const SpawnOptions& o) {
  if (argv.empty()) return -1;
  std::vector<std::string> args = argv, envs = child_environment(o.env);
  std::vector<char*> a, e;
  for (auto& s : args)
    a.push_back(s.data());
  a.push_back(nullptr);
  for (auto& s : envs)
    e.push_back(s.data());
  e.push_back(nullptr);
  const int flags = O_WRONLY | O_CREAT | (o.append ? O_APPEND : O_TRUNC);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, o.out_path.empty() ? "/dev/null" : o.out_path.c_str(), flags,
                                   0644);
  posix_spawn_file_actions_addopen(&fa, 2, o.err_path.empty() ? "/dev/null" : o.err_path.c_str(), flags,
                                   0644);
  if (!o.cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, o.cwd.c_str());
  pid_t pid = -1;
  // spawnp: a bare name ("script") is looked up in PATH; a path is taken as it is.
  const int rc = posix_spawnp(&pid, a[0], &fa, nullptr, a.data(), e.data());
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

namespace {

int decode_status(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

std::optional<int> try_wait(pid_t pid) {
  int status = 0;
  pid_t r;
  while ((r = ::waitpid(pid, &status, WNOHANG)) < 0 && errno == EINTR) {
  }
  if (r == 0) return std::nullopt;
  if (r < 0) return -1;
  return decode_status(status);
}

int wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
  if (pid <= 0) return -1;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    if (auto code = try_wait(pid)) return *code;
    if (std::chrono::steady_clock::now() >= deadline) {
      (void)kill_and_wait(pid, SIGKILL);
      return k_timed_out;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(20));
  }
}

int kill_and_wait(pid_t pid, int signal) {
  if (pid <= 0) return -1;
  ::kill(pid, signal);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return decode_status(status);
}

Output run(const std::vector<std::string>& argv, const std::string& cwd, const Env& env,
           std::chrono::milliseconds timeout) {
  static std::atomic<int> counter{0};
  const int n = counter++;
  fs::create_directories(cwd);
  SpawnOptions o;
  o.cwd = cwd;
  o.out_path = cwd + "/run-" + std::to_string(n) + ".out";
  o.err_path = cwd + "/run-" + std::to_string(n) + ".err";
  o.env = env;
  Output out;
  const pid_t pid = spawn(argv, o);
  if (pid < 0) {
    out.err = "cannot start " + argv.front();
    return out;
  }
  out.exit_code = wait_exit(pid, timeout);
  out.out = slurp(o.out_path);
  out.err = slurp(o.err_path);
  if (out.exit_code == k_timed_out) {
    out.err += "\n[tests/support] killed after " + std::to_string(timeout.count()) + " ms\n";
  }
  return out;
}

Output run_lens(const std::vector<std::string>& args, const std::string& cwd, const Env& env,
                std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {lens_embed_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, cwd, env, timeout);
}

pid_t spawn_lens(const std::vector<std::string>& args, const SpawnOptions& options) {
  std::vector<std::string> argv = {lens_embed_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return spawn(argv, options);
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds every) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(every);
  }
}

TempDir::TempDir(const std::string& name) {
  static std::atomic<int> counter{0};
  const char* tmp = std::getenv("TMPDIR");
  const fs::path base = tmp && *tmp ? fs::path(tmp) : fs::path("/tmp");
  path_ =
      (base / ("lens_" + name + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++))).string();
  fs::remove_all(path_);
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  if (keep_) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

}  // namespace lens::test
