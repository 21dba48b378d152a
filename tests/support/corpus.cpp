// The deterministic Lens corpus (see corpus.h).
#include "support/corpus.h"

#include <fmt/core.h>
#include <optional>
#include <random>

namespace lens::test {

std::string uuid_from(std::uint64_t n) {
  // splitmix64's finaliser is a bijection: distinct counters give distinct ids, and the
  // counter in the last group keeps them unique even if it were not.
  std::uint64_t z = n + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return fmt::format("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", z >> 32, (z >> 16) & 0xFFFF, (z >> 4) & 0xFFF,
                     (n >> 48) & 0xFFF, n & 0xFFFFFFFFFFFFULL);
}

Corpus make_corpus(const CorpusOptions& o) {
  static const char* const k_words[] = {"enzyme",     "photosynthesis",
                                        "revolution", "quadratic",
                                        "tensor",     "kernel",
                                        "latency",    "mitochondria",
                                        "Napoléon",   "über",
                                        "naïve",      "日本語",
                                        "данные",     "🙂",
                                        "SELECT",     "null",
                                        "\"quoted\"", "back\\slash",
                                        "tab\there",  "line\nbreak",
                                        "garçon",     "→",
                                        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",    "ﷺ",
                                        "a",          "the",
                                        "of",         "why",
                                        "how",        "42"};
  constexpr std::size_t k_word_count = sizeof k_words / sizeof k_words[0];
  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> u(0, 1);
  auto words = [&](int lo, int hi) {
    std::string s;
    const int n = std::uniform_int_distribution<int>(lo, hi)(rng);
    for (int i = 0; i < n; ++i) {
      if (i) s += ' ';
      s += k_words[rng() % k_word_count];
    }
    return s;
  };
  auto timestamp = [](std::int64_t seconds) {
    const std::int64_t day = seconds / 86400, rem = seconds % 86400;
    return fmt::format("2024-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.000Z", 1 + day / 28 % 12, 1 + day % 28,
                       rem / 3600, rem / 60 % 60, rem % 60);
  };
  Corpus c;
  std::uint64_t next_id = o.seed << 40;
  std::uint64_t conv_no = 0;
  while (c.eligible < o.exchanges) {
    const std::string conv = uuid_from(0xC000000000000ULL + (o.seed << 32) + conv_no++);
    // Conversations interleave in time, so the keyset order jumps between them.
    std::int64_t t = static_cast<std::int64_t>(rng() % (86400ULL * 300));
    auto add = [&](const std::string& role, std::optional<std::string> content) {
      // One message in 20 shares its predecessor's timestamp: then id order decides.
      if (u(rng) >= 0.05) t += 1 + static_cast<std::int64_t>(rng() % 5);
      Db::Message m{uuid_from(next_id++), conv, role, timestamp(t), std::move(content)};
      c.messages.push_back(m);
      return m.id;
    };
    if (u(rng) < 0.2) add("system", "You are a helpful assistant. " + words(3, 10));
    const int turns = std::uniform_int_distribution<int>(1, 6)(rng);
    for (int k = 0; k < turns && c.eligible < o.exchanges; ++k) {
      const double r = u(rng);
      if (r < 0.01) {
        ++c.ineligible_users;
        const double kind = u(rng);
        add("user", kind < 0.34 ? std::nullopt : std::optional<std::string>(kind < 0.67 ? "" : " \t\n "));
      } else {
        std::string content = words(4, 60);
        bool poisoned = false;
        if (u(rng) < o.p_long) {
          ++c.long_inputs;
          content += ' ';
          while (content.size() < 60'000)
            content += words(50, 50) + ' ';
        } else if (u(rng) < o.p_poison) {
          content += std::string(" ") + k_poison_marker;
          poisoned = true;
        }
        const std::string id = add("user", content);
        ++c.eligible;
        if (poisoned) c.poisoned.insert(id);
      }
      if (u(rng) < 0.1) add("tool", "{\"result\": \"" + words(2, 8) + "\"}");
      const double a = u(rng);
      if (a < 0.85)
        add("assistant", words(5, 80));
      else if (a < 0.88)
        add("assistant", std::nullopt);  // an answer without content still answers
    }
  }
  return c;
}

}  // namespace lens::test
