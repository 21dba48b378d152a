// lens-sample-corpus: writes a synthetic Lens corpus (student–assistant conversations)
// into a SQLite file or as CSV for PostgreSQL's COPY, for the demo, tests and benchmarks.
// Deterministic for a given --seed, so tests can predict what it made.
#include <sqlite3.h>

#include <fmt/core.h>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Subject {
  const char* name;
  std::vector<const char*> topics;
};

const std::vector<Subject> k_subjects = {
    {"biology",
     {"photosynthesis", "cell division", "mitosis", "meiosis", "DNA replication", "enzymes",
      "the nitrogen cycle", "natural selection", "the immune system", "osmosis"}},
    {"mathematics",
     {"quadratic equations", "derivatives", "integrals", "prime numbers", "probability",
      "the Pythagorean theorem", "logarithms", "matrices", "limits", "vectors"}},
    {"physics",
     {"Newton's second law", "momentum", "electric circuits", "refraction", "gravity", "thermodynamics",
      "kinetic energy", "magnetism", "waves", "radioactivity"}},
    {"chemistry",
     {"covalent bonds", "the periodic table", "acids and bases", "oxidation", "moles", "chemical equilibrium",
      "isotopes", "reaction rates", "polymers", "titration"}},
    {"history",
     {"the French Revolution", "the Industrial Revolution", "the Cold War", "the Roman Empire", "World War I",
      "the Renaissance", "the printing press", "the Silk Road", "decolonization", "the Meiji Restoration"}},
    {"programming",
     {"recursion", "hash tables", "binary search", "pointers", "Big-O notation", "SQL joins", "unit tests",
      "closures", "sorting algorithms", "git branches"}},
    {"literature",
     {"Hamlet", "symbolism", "the unreliable narrator", "haiku", "Pride and Prejudice", "metaphor",
      "the hero's journey", "sonnets", "irony", "Things Fall Apart"}},
};

const std::vector<const char*> k_question_forms = {
    "Can you explain {} in simple terms?",
    "I don't understand {}. Where should I start?",
    "What is the difference between {} and {}?",
    "Why does {} matter for my {} exam?",
    "Give me three practice questions about {}.",
    "How would you summarise {} in one paragraph?",
    "My teacher said {} is related to {}. Is that true?",
    "What are common mistakes students make with {}?",
};

const std::vector<const char*> k_answer_forms = {
    "Sure! {} is a core idea in {}. Think of it step by step: first the definition, then an example, "
    "then a quick check of your understanding.",
    "Good question. The key point about {} is how it connects to {}. Let's work through an example "
    "together.",
    "Here is a short summary of {}: it describes a process you will meet again in {}. Try explaining it "
    "back to me in your own words.",
    "A common mistake with {} is mixing it up with {}. Keep the two definitions side by side.",
};

const std::vector<const char*> k_extra = {
    "I'm studying for a test tomorrow.",
    "Please keep it short.",
    "Can you use an example?",
    "Explain it like I'm 12.",
    "I tried the textbook but it was confusing.",
    "",
    "Thanks for your help earlier!",
    "Also, how long should I spend revising this?",
};

std::string format_template(const char* form, std::string_view a, std::string_view b) {
  std::string out;
  int slot = 0;
  for (const char* p = form; *p; ++p) {
    if (p[0] == '{' && p[1] == '}') {
      out += slot++ == 0 ? a : b;
      ++p;
    } else {
      out.push_back(*p);
    }
  }
  return out;
}

std::string uuid(std::mt19937_64& rng) {
  const std::uint64_t hi = rng(), lo = rng();
  return fmt::format("{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}", hi >> 32, (hi >> 16) & 0xFFFF, hi & 0xFFF,
                     0x8000 | (lo >> 48 & 0x3FFF), lo & 0xFFFFFFFFFFFFULL);
}

std::string timestamp(std::int64_t seconds_since_2024) {
  const std::int64_t base = 1704067200;  // 2024-01-01T00:00:00Z
  const std::time_t t = static_cast<std::time_t>(base + seconds_since_2024);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return std::string(buf) + ".000000Z";
}

struct Message {
  std::string id, conversation_id, role;
  std::optional<std::string> content;
  std::string created_at;
};

class Sink {
 public:
  virtual ~Sink() = default;
  virtual void conversation(const std::string& id, const std::string& user_id, const std::string& title,
                            const std::string& created_at) = 0;
  virtual void message(const Message& m) = 0;
  virtual void finish() = 0;
};

class SqliteSink final : public Sink {
 public:
  explicit SqliteSink(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) die(fmt::format("cannot open {}", path));
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=OFF");
    exec(
        "CREATE TABLE IF NOT EXISTS conversations (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, title TEXT, "
        "created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))");
    exec(
        "CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL "
        "REFERENCES conversations(id) ON DELETE CASCADE, role TEXT NOT NULL CHECK (role IN "
        "('system','user','assistant','tool')), content TEXT, created_at TEXT NOT NULL, updated_at TEXT)");
    // The indexes a Lens database has on messages (lens-embed's pending query needs both;
    // it creates them only in `init`, never in `run`).
    exec("CREATE INDEX IF NOT EXISTS messages_user_keyset ON messages (created_at, id) WHERE role = 'user'");
    exec(
        "CREATE INDEX IF NOT EXISTS messages_conversation_order ON messages (conversation_id, created_at, "
        "id)");
    exec("BEGIN");
    prepare(&conv_, "INSERT INTO conversations (id, user_id, title, created_at) VALUES (?,?,?,?)");
    prepare(&msg_,
            "INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES (?,?,?,?,?)");
  }
  ~SqliteSink() override {
    sqlite3_finalize(conv_);
    sqlite3_finalize(msg_);
    sqlite3_close(db_);
  }
  void conversation(const std::string& id, const std::string& user_id, const std::string& title,
                    const std::string& created_at) override {
    bind(conv_, {id, user_id, title, created_at});
    step(conv_);
    if (++rows_ % 50'000 == 0) {
      exec("COMMIT");
      exec("BEGIN");
    }
  }
  void message(const Message& m) override {
    sqlite3_bind_text(msg_, 1, m.id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(msg_, 2, m.conversation_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(msg_, 3, m.role.c_str(), -1, SQLITE_TRANSIENT);
    if (m.content)
      sqlite3_bind_text(msg_, 4, m.content->c_str(), static_cast<int>(m.content->size()), SQLITE_TRANSIENT);
    else
      sqlite3_bind_null(msg_, 4);
    sqlite3_bind_text(msg_, 5, m.created_at.c_str(), -1, SQLITE_TRANSIENT);
    step(msg_);
  }
  void finish() override { exec("COMMIT"); }

 private:
  void die(const std::string& what) {
    std::fprintf(stderr, "lens-sample-corpus: %s: %s\n", what.c_str(), db_ ? sqlite3_errmsg(db_) : "");
    std::exit(1);
  }
  void exec(const char* sql) {
    if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) die(sql);
  }
  void prepare(sqlite3_stmt** s, const char* sql) {
    if (sqlite3_prepare_v2(db_, sql, -1, s, nullptr) != SQLITE_OK) die(sql);
  }
  void bind(sqlite3_stmt* s, std::initializer_list<std::string> values) {
    int i = 1;
    for (const auto& v : values)
      sqlite3_bind_text(s, i++, v.c_str(), -1, SQLITE_TRANSIENT);
  }
  void step(sqlite3_stmt* s) {
    if (sqlite3_step(s) != SQLITE_DONE) die("insert");
    sqlite3_reset(s);
  }
  sqlite3* db_ = nullptr;
  sqlite3_stmt* conv_ = nullptr;
  sqlite3_stmt* msg_ = nullptr;
  long rows_ = 0;
};

// CSV in PostgreSQL's COPY ... (FORMAT csv) dialect; NULL is an unquoted empty field.
class CsvSink final : public Sink {
 public:
  explicit CsvSink(const std::string& dir) {
    conv_ = std::fopen((dir + "/conversations.csv").c_str(), "w");
    msg_ = std::fopen((dir + "/messages.csv").c_str(), "w");
    if (!conv_ || !msg_) {
      std::fprintf(stderr, "lens-sample-corpus: cannot write CSV files in %s\n", dir.c_str());
      std::exit(1);
    }
  }
  void conversation(const std::string& id, const std::string& user_id, const std::string& title,
                    const std::string& created_at) override {
    std::fputs(fmt::format("{},{},{},{}\n", id, user_id, quote(title), created_at).c_str(), conv_);
  }
  void message(const Message& m) override {
    std::fputs(fmt::format("{},{},{},{},{},\n", m.id, m.conversation_id, m.role,
                           m.content ? quote(*m.content) : "", m.created_at)
                   .c_str(),
               msg_);
  }
  void finish() override {
    std::fclose(conv_);
    std::fclose(msg_);
  }

 private:
  static std::string quote(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
      if (c == '"') out.push_back('"');
      out.push_back(c);
    }
    return out + "\"";
  }
  std::FILE* conv_ = nullptr;
  std::FILE* msg_ = nullptr;
};

int usage() {
  std::fprintf(stderr,
               "usage: lens-sample-corpus (--sqlite PATH | --csv DIR) [--conversations N] [--seed S]\n"
               "  Writes N conversations (default 5000) of 1-4 student questions each, answered by\n"
               "  the assistant; a few have system/tool messages, blank or unanswered questions.\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string sqlite_path, csv_dir;
  long conversations = 5000;
  std::uint64_t seed = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "lens-sample-corpus: %s needs a value\n", argv[i]);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--sqlite")
      sqlite_path = value();
    else if (a == "--csv")
      csv_dir = value();
    else if (a == "--conversations")
      conversations = std::stol(value());
    else if (a == "--seed")
      seed = std::stoull(value());
    else
      return usage();
  }
  if (sqlite_path.empty() == csv_dir.empty()) return usage();
  std::unique_ptr<Sink> sink;
  if (!sqlite_path.empty())
    sink = std::make_unique<SqliteSink>(sqlite_path);
  else
    sink = std::make_unique<CsvSink>(csv_dir);

  std::mt19937_64 rng(seed);
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  std::int64_t clock = 0;
  long messages = 0, user_messages = 0;
  for (long c = 0; c < conversations; ++c) {
    const Subject& subject = k_subjects[pick(k_subjects.size())];
    const std::string conv_id = uuid(rng);
    clock += 1 + static_cast<std::int64_t>(pick(600));
    const std::string title =
        fmt::format("{}: {}", subject.name, subject.topics[pick(subject.topics.size())]);
    sink->conversation(conv_id, uuid(rng), title, timestamp(clock));
    std::int64_t t = clock;
    auto emit = [&](const char* role, std::optional<std::string> content) {
      t += 1 + static_cast<std::int64_t>(pick(90));
      sink->message({uuid(rng), conv_id, role, std::move(content), timestamp(t)});
      ++messages;
    };
    if (pick(10) == 0) emit("system", std::string("You are a patient tutor for secondary-school students."));
    const std::size_t turns = 1 + pick(4);
    for (std::size_t turn = 0; turn < turns; ++turn) {
      const char* topic = subject.topics[pick(subject.topics.size())];
      const char* other = subject.topics[pick(subject.topics.size())];
      std::string question = format_template(k_question_forms[pick(k_question_forms.size())], topic, other);
      if (const char* extra = k_extra[pick(k_extra.size())]; *extra) question += std::string(" ") + extra;
      const std::size_t oddity = pick(200);
      if (oddity == 0)
        emit("user", std::nullopt);  // NULL content
      else if (oddity == 1)
        emit("user", std::string("   \n\t"));  // blank
      else
        emit("user", question);
      ++user_messages;
      if (pick(50) == 0) emit("tool", std::string("{\"search_results\": []}"));
      if (pick(25) == 0) continue;  // unanswered (the next user message follows directly)
      emit("assistant", format_template(k_answer_forms[pick(k_answer_forms.size())], topic, subject.name));
    }
  }
  sink->finish();
  std::fprintf(stderr, "lens-sample-corpus: %ld conversations, %ld messages (%ld from users)\n",
               conversations, messages, user_messages);
  return 0;
}
