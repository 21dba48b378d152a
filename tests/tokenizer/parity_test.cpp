// Parity with tiktoken: every corpus string (data/corpus.jsonl) must encode to the ids that
// tiktoken's encode_ordinary gave it (data/expected.bin, from gen_expected.mjs), plus the
// round-trip and truncate properties on the same strings. Needs no node at test time.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace lens::tokenizer {
namespace {

struct Record {
  std::string cat;
  std::string text;
  std::vector<std::uint32_t> ids[2];  // cl100k_base, o200k_base
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::vector<Record>& corpus() {
  static const std::vector<Record> records = [] {
    std::vector<Record> out;
    const std::string dir = LENS_PARITY_DATA_DIR;
    std::istringstream lines(slurp(dir + "/corpus.jsonl"));
    for (std::string line; std::getline(lines, line);) {
      const auto j = nlohmann::json::parse(line);
      out.push_back({j.at("cat").get<std::string>(), j.at("text").get<std::string>(), {}});
    }
    const std::string bin = slurp(dir + "/expected.bin");
    std::size_t pos = 12;
    if (bin.size() < 12 || bin.compare(0, 8, "LENSTOK1") != 0) return std::vector<Record>{};
    std::uint32_t n = 0;
    for (int i = 0; i < 4; ++i)
      n |= std::uint32_t(std::uint8_t(bin[8 + i])) << (8 * i);
    if (n != out.size()) return std::vector<Record>{};
    auto varint = [&] {
      std::uint64_t v = 0;
      for (int shift = 0; pos < bin.size(); shift += 7) {
        const std::uint8_t b = static_cast<std::uint8_t>(bin[pos++]);
        v |= std::uint64_t(b & 0x7F) << shift;
        if ((b & 0x80) == 0) break;
      }
      return v;
    };
    for (Record& r : out) {
      for (auto& ids : r.ids) {
        ids.resize(varint());
        for (auto& id : ids)
          id = static_cast<std::uint32_t>(varint());
      }
    }
    return out;
  }();
  return records;
}

class Parity : public ::testing::TestWithParam<Encoding> {
 protected:
  std::shared_ptr<const Tokenizer> tok() {
    auto t = Tokenizer::load(GetParam());
    EXPECT_TRUE(t.has_value()) << (t ? "" : t.error().message);
    return t ? *t : nullptr;
  }
  std::size_t slot() const { return GetParam() == Encoding::cl100k_base ? 0 : 1; }
};

TEST_P(Parity, CorpusIsLargeEnough) {
  EXPECT_GE(corpus().size(), 2000u);
}

TEST_P(Parity, EncodeMatchesTiktokenExactly) {
  auto t = tok();
  ASSERT_TRUE(t);
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < corpus().size(); ++i) {
    const Record& r = corpus()[i];
    const auto got = t->encode(r.text);
    if (got != r.ids[slot()]) {
      if (++mismatches <= 20) {
        std::size_t k = 0;
        while (k < got.size() && k < r.ids[slot()].size() && got[k] == r.ids[slot()][k])
          ++k;
        ADD_FAILURE() << "record " << i << " [" << r.cat << "] first difference at token " << k << " of "
                      << r.ids[slot()].size() << ": " << nlohmann::json(r.text.substr(0, 200)).dump();
      }
    }
    EXPECT_EQ(t->count(r.text), r.ids[slot()].size()) << "record " << i;
  }
  EXPECT_EQ(mismatches, 0u) << "of " << corpus().size();
}

TEST_P(Parity, DecodeRoundTrips) {
  auto t = tok();
  ASSERT_TRUE(t);
  for (std::size_t i = 0; i < corpus().size(); ++i) {
    const Record& r = corpus()[i];
    ASSERT_EQ(t->decode(r.ids[slot()]), r.text) << "record " << i;
    ASSERT_EQ(t->decode(t->encode(r.text)), r.text) << "record " << i;
  }
}

bool on_boundary(std::string_view s, std::size_t n) {
  return n == s.size() || (static_cast<unsigned char>(s[n]) & 0xC0) != 0x80;
}

TEST_P(Parity, TruncateFitsAndIsMaximal) {
  auto t = tok();
  ASSERT_TRUE(t);
  for (std::size_t i = 0; i < corpus().size(); ++i) {
    const Record& r = corpus()[i];
    const std::string_view s = r.text;
    const std::size_t total = r.ids[slot()].size();
    // A few budgets per string: 0, 1, a third, just under the total, and the total.
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, total / 3, total > 0 ? total - 1 : 0, total}) {
      const std::string_view cut = t->truncate(s, n).text;
      ASSERT_TRUE(on_boundary(s, cut.size())) << "record " << i << " n " << n;
      ASSERT_LE(t->count(cut), n) << "record " << i << " n " << n;
      if (cut.size() < s.size()) {
        std::size_t next = cut.size() + 1;
        while (!on_boundary(s, next))
          ++next;
        ASSERT_GT(t->count(s.substr(0, next)), n) << "record " << i << " n " << n << " not maximal";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Encodings, Parity, ::testing::Values(Encoding::cl100k_base, Encoding::o200k_base),
                         [](const auto& info) { return std::string(to_string(info.param)); });

}  // namespace
}  // namespace lens::tokenizer
