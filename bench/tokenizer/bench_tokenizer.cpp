// Measures lens_tokenizer single-thread throughput (encode and count, MB/s) and load time
// on a deterministic mixed corpus (>= 20 MB) that it can also write out for the node peers.
// Usage: bench_tokenizer [--size-mb N] [--write-corpus FILE] [--json FILE] [--runs N]
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace {

using lens::tokenizer::Encoding;
using lens::tokenizer::Tokenizer;
using Clock = std::chrono::steady_clock;

// A mix meant to resemble chat messages: mostly English prose, some code, other scripts,
// emoji, numbers and odd whitespace. Words are drawn from small vocabularies so documents
// differ without needing any downloaded text.
constexpr const char* k_english[] = {"the",
                                     "of",
                                     "and",
                                     "to",
                                     "a",
                                     "in",
                                     "is",
                                     "it",
                                     "you",
                                     "that",
                                     "he",
                                     "was",
                                     "for",
                                     "on",
                                     "are",
                                     "with",
                                     "as",
                                     "I",
                                     "his",
                                     "they",
                                     "be",
                                     "at",
                                     "one",
                                     "have",
                                     "this",
                                     "from",
                                     "or",
                                     "had",
                                     "by",
                                     "word",
                                     "but",
                                     "what",
                                     "some",
                                     "we",
                                     "can",
                                     "out",
                                     "other",
                                     "were",
                                     "all",
                                     "there",
                                     "when",
                                     "up",
                                     "use",
                                     "your",
                                     "how",
                                     "said",
                                     "an",
                                     "each",
                                     "she",
                                     "which",
                                     "do",
                                     "their",
                                     "time",
                                     "if",
                                     "will",
                                     "way",
                                     "about",
                                     "many",
                                     "then",
                                     "them",
                                     "write",
                                     "would",
                                     "like",
                                     "so",
                                     "these",
                                     "her",
                                     "long",
                                     "make",
                                     "thing",
                                     "see",
                                     "him",
                                     "two",
                                     "has",
                                     "look",
                                     "more",
                                     "day",
                                     "could",
                                     "go",
                                     "come",
                                     "did",
                                     "number",
                                     "sound",
                                     "no",
                                     "most",
                                     "people",
                                     "embedding",
                                     "database",
                                     "tokenizer",
                                     "message",
                                     "assistant",
                                     "conversation",
                                     "vector",
                                     "function",
                                     "performance",
                                     "understand",
                                     "unfortunately",
                                     "configuration",
                                     "PostgreSQL",
                                     "JavaScript",
                                     "it's",
                                     "don't",
                                     "we've",
                                     "they're",
                                     "I'm",
                                     "you'll",
                                     "he'd",
                                     "OpenAI",
                                     "API",
                                     "Kubernetes",
                                     "deployment",
                                     "microservice",
                                     "latency",
                                     "throughput",
                                     "hyperparameter"};
constexpr const char* k_code_lines[] = {
    "def process(items):\n",
    "    for i, item in enumerate(items):\n",
    "        if item is None:\n            continue\n",
    "    return {k: v for k, v in data.items()}\n",
    "const result = await fetch(`${baseUrl}/embeddings`, { method: 'POST' });\n",
    "for (std::size_t i = 0; i < n; ++i) { sum += v[i] * w[i]; }\n",
    "SELECT id, content FROM messages WHERE conversation_id = $1 ORDER BY created_at;\n",
    "if err != nil {\n\treturn nil, fmt.Errorf(\"open %s: %w\", path, err)\n}\n",
    "  \"model\": \"text-embedding-3-small\",\n  \"dimensions\": 1536,\n",
    "<div className=\"container\">{children}</div>\n",
    "# TODO: handle the 429 case\n",
    "x = np.linspace(0, 2 * np.pi, 100)\n",
    "    }\n}\n\n",
    "\t\t// keep going\n"};
constexpr const char* k_other[] = {"我们今天讨论向量数据库的性能。",
                                   "人工智能正在改变世界，",
                                   "東京は日本の首都です。",
                                   "カタカナとひらがな",
                                   "안녕하세요, 오늘 날씨가 좋네요.",
                                   "Привет, как дела? Всё хорошо.",
                                   "Съешь же ещё этих мягких булок",
                                   "مرحبا بالعالم، كيف حالك؟",
                                   "שלום עולם, מה שלומך?",
                                   "नमस्ते, आप कैसे हैं?",
                                   "สวัสดีครับ ยินดีที่ได้รู้จัก",
                                   "Γειά σου Κόσμε",
                                   "naïve café résumé",
                                   "Straße über Größe",
                                   "¿Qué tal? ¡Muy bien!"};
constexpr const char* k_emoji[] = {"😀", "😂", "👍",    "👍🏽", "🎉", "🔥", "❤️", "👨‍👩‍👧",
                                   "🚀", "✅", "🤔", "🙏🏼"};
constexpr const char* k_punct[] = {".", ",", "!", "?", ":", ";", " -", " (", ")", "...", "\"", "'"};

template <std::size_t N>
const char* pick(std::mt19937_64& rng, const char* const (&a)[N]) {
  return a[rng() % N];
}

std::string make_document(std::mt19937_64& rng) {
  std::string doc;
  const std::size_t target = 200 + rng() % 6000;
  while (doc.size() < target) {
    const unsigned kind = static_cast<unsigned>(rng() % 100);
    if (kind < 62) {  // a sentence of prose
      const int words = 4 + static_cast<int>(rng() % 18);
      for (int w = 0; w < words; ++w) {
        const std::size_t at = doc.size();
        doc += pick(rng, k_english);
        if (w == 0 && doc[at] >= 'a' && doc[at] <= 'z') doc[at] = static_cast<char>(doc[at] - 32);
        if (rng() % 9 == 0) doc += pick(rng, k_punct);
        if (rng() % 25 == 0) {
          doc += ' ';
          doc += std::to_string(rng() % 100000);
        }
        doc += ' ';
      }
      doc.back() = '.';
      doc += rng() % 5 == 0 ? "\n\n" : " ";
    } else if (kind < 77) {  // a code block
      doc += "```\n";
      for (int l = 0, n = 2 + static_cast<int>(rng() % 8); l < n; ++l)
        doc += pick(rng, k_code_lines);
      doc += "```\n";
    } else if (kind < 90) {  // other scripts
      doc += pick(rng, k_other);
      doc += rng() % 2 ? " " : "\n";
    } else if (kind < 95) {  // chat-style emoji
      for (int e = 0, n = 1 + static_cast<int>(rng() % 4); e < n; ++e)
        doc += pick(rng, k_emoji);
      doc += ' ';
    } else {  // numbers, URLs, odd whitespace
      // Appends one by one: g++ 12 warns falsely (-Wrestrict) on chained string operator+.
      doc += "https://example.com/item/";
      doc += std::to_string(rng() % 1000000);
      doc += "?ref=chat  \t";
      doc += std::to_string(rng());
      doc += "\r\n";
    }
  }
  return doc;
}

std::uint32_t fnv_ids(std::uint32_t h, const std::vector<std::uint32_t>& ids) {
  for (std::uint32_t id : ids)
    h = (h ^ id) * 16777619u;
  return h;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// CPU time of this process: the bench machines are shared, and wall time under contention
// says more about the neighbours than about the code. Both are reported.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

struct Timer {
  Clock::time_point wall = Clock::now();
  double cpu = cpu_seconds();
  [[nodiscard]] double wall_s() const { return seconds_since(wall); }
  [[nodiscard]] double cpu_s() const { return cpu_seconds() - cpu; }
};

}  // namespace

int main(int argc, char** argv) {
  std::size_t size_mb = 24;
  int runs = 3;
  std::string corpus_out, json_out;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--size-mb" && i + 1 < argc)
      size_mb = std::strtoul(argv[++i], nullptr, 10);
    else if (a == "--write-corpus" && i + 1 < argc)
      corpus_out = argv[++i];
    else if (a == "--json" && i + 1 < argc)
      json_out = argv[++i];
    else if (a == "--runs" && i + 1 < argc)
      runs = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr,
                   "usage: bench_tokenizer [--size-mb N] [--write-corpus FILE] [--json FILE] [--runs N]\n");
      return 2;
    }
  }

  std::mt19937_64 rng(20240601);
  std::vector<std::string> docs;
  std::size_t bytes = 0;
  while (bytes < size_mb * 1000 * 1000) {
    docs.push_back(make_document(rng));
    bytes += docs.back().size();
  }
  if (!corpus_out.empty()) {
    // NUL-separated documents: NUL never occurs in the generated text.
    std::ofstream out(corpus_out, std::ios::binary);
    for (const auto& d : docs)
      out.write(d.c_str(), static_cast<std::streamsize>(d.size() + 1));
  }
  std::printf("corpus: %zu documents, %.2f MB\n", docs.size(), bytes / 1e6);

  std::string json = "{\"bytes\":" + std::to_string(bytes) + ",\"docs\":" + std::to_string(docs.size());
  for (Encoding enc : {Encoding::cl100k_base, Encoding::o200k_base}) {
    const Timer load_timer;
    auto loaded = Tokenizer::load(enc);
    const double load_ms = load_timer.wall_s() * 1e3;
    const double load_cpu_ms = load_timer.cpu_s() * 1e3;
    if (!loaded) {
      std::fprintf(stderr, "load: %s\n", loaded.error().message.c_str());
      return 1;
    }
    const Tokenizer& tok = **loaded;
    double enc_wall = 1e9, enc_cpu = 1e9, cnt_wall = 1e9, cnt_cpu = 1e9;
    std::size_t tokens = 0, counted = 0;
    std::uint32_t hash = 2166136261u;
    for (int r = 0; r < runs; ++r) {
      std::vector<std::vector<std::uint32_t>> all;
      all.reserve(docs.size());
      const Timer te;
      for (const auto& d : docs)
        all.push_back(tok.encode(d));
      enc_wall = std::min(enc_wall, te.wall_s());
      enc_cpu = std::min(enc_cpu, te.cpu_s());
      const Timer tc;
      std::size_t c = 0;
      for (const auto& d : docs)
        c += tok.count(d);
      cnt_wall = std::min(cnt_wall, tc.wall_s());
      cnt_cpu = std::min(cnt_cpu, tc.cpu_s());
      tokens = 0;
      hash = 2166136261u;
      for (const auto& ids : all) {
        tokens += ids.size();
        hash = fnv_ids(hash, ids);
      }
      counted = c;
    }
    const double mb = static_cast<double>(bytes) / 1e6;
    const std::string name(lens::tokenizer::to_string(enc));
    std::printf(
        "%-12s load %.1f ms (cpu %.1f) | encode %.1f MB/s (cpu %.1f) | count %.1f MB/s (cpu %.1f)"
        " | tokens %zu | hash %08x\n",
        name.c_str(), load_ms, load_cpu_ms, mb / enc_wall, mb / enc_cpu, mb / cnt_wall, mb / cnt_cpu, tokens,
        hash);
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  ",\"%s\":{\"load_ms\":%.2f,\"load_cpu_ms\":%.2f,\"encode_mbps\":%.2f,"
                  "\"encode_cpu_mbps\":%.2f,\"count_mbps\":%.2f,\"count_cpu_mbps\":%.2f,"
                  "\"tokens\":%zu,\"hash\":\"%08x\"}",
                  name.c_str(), load_ms, load_cpu_ms, mb / enc_wall, mb / enc_cpu, mb / cnt_wall,
                  mb / cnt_cpu, tokens, hash);
    json += buf;
    if (counted != tokens) {
      std::fprintf(stderr, "count() and encode() disagree\n");
      return 1;
    }
  }
  json += "}\n";
  if (!json_out.empty()) std::ofstream(json_out) << json;
  return 0;
}
