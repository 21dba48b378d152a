// Shared by the chaos, hostile-input and secrets tests: start lens-embed as a child
// process, a throwaway PostgreSQL, a small SQL client for SQLite or PostgreSQL, and a
// deterministic Lens corpus generator with exchange-level bookkeeping.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace lens::harness {

std::string slurp(const std::string& path);

// Environment of a child: ours without anything that configures lens-embed (LENS_*,
// DATABASE_URL, POSTGRES_*, *_API_KEY, *_BASE_URL), plus `extra`.
std::vector<std::string> child_environment(const std::map<std::string, std::string>& extra);

// Starts `argv` with stdout/stderr appended to the files given, in `cwd` ("" = ours).
// Returns the pid, or -1 when it could not start.
pid_t spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
            const std::string& out_path, const std::string& err_path, const std::string& cwd = "");
// Exit code, or 128 + signal.
int wait_exit(pid_t pid);
// nullopt while it runs.
std::optional<int> try_wait(pid_t pid);

struct Output {
  int exit_code = -1;
  std::string out, err;
};
// Runs to completion; out/err captured through files in `dir`.
Output run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
           const std::string& dir);

// A throwaway PostgreSQL started by scripts/pg-test-server.sh; stopped by the destructor.
class PgServer {
 public:
  explicit PgServer(std::string script, std::string state_file);
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;
  [[nodiscard]] bool ok() const { return !url_.empty(); }
  [[nodiscard]] const std::string& url() const { return url_; }
  [[nodiscard]] const std::string& dir() const { return dir_; }
  [[nodiscard]] int port() const { return port_; }
  // Crash-stops the server (immediate), keeps it down `down_seconds`, starts it again.
  bool restart(int down_seconds);
  // Switches 127.0.0.1 to scram-sha-256 password authentication and reloads.
  bool require_passwords();

 private:
  std::string script_, state_file_, url_, dir_;
  int port_ = 0;
};

// Minimal SQL client over SQLite (sqlite:PATH) or PostgreSQL (a libpq URL).
class Db {
 public:
  static std::unique_ptr<Db> open(const std::string& url);
  virtual ~Db() = default;
  virtual bool is_postgres() const = 0;
  // Empty on success, else the error.
  virtual std::string exec(const std::string& sql) = 0;
  // First column of the first row; nullopt on error or no row.
  virtual std::optional<std::string> scalar(const std::string& sql) = 0;
  // Every value of every row, concatenated with '\n' (for secret scans).
  virtual std::string dump(const std::string& sql) = 0;
  struct Message {
    std::string id, conversation_id, role, created_at;
    std::optional<std::string> content;
  };
  // Inserts conversations (ids taken from the messages) and messages in one transaction.
  virtual std::string insert(const std::vector<Message>& messages) = 0;
  // Inserts one message through a parameterised statement; empty or the error (with SQLSTATE).
  virtual std::string insert_one(const Message& m) = 0;
};

// A deterministic corpus of `exchanges` eligible user messages with answers (most),
// unanswered questions, system/tool messages, blank/NULL user messages, equal timestamps
// ordered by id, a few inputs over the token limit and a few that the stand-in rejects.
struct CorpusOptions {
  std::int64_t exchanges = 1000;
  std::uint64_t seed = 1;
  double p_long = 0.0005;   // over 8191 tokens: truncated
  double p_poison = 0.001;  // contains k_poison_marker: the stand-in answers 400 context length
};
inline constexpr const char* k_poison_marker = "POISON-PILL-7f3a";
struct Corpus {
  std::vector<Db::Message> messages;
  std::int64_t eligible = 0, ineligible_users = 0, long_inputs = 0;
  std::set<std::string> poisoned;  // user message ids expected to fail with context_length
};
Corpus make_corpus(const CorpusOptions& options);

// An id in uuid form derived from a counter (valid for PostgreSQL's uuid type); the
// bits are mixed so id order differs from creation order.
std::string uuid_from(std::uint64_t n);

}  // namespace lens::harness
