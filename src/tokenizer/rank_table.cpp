// Parses .tiktoken rank files in one pass (hand-rolled base64: the file is 100k-200k lines
// and must load in well under 50 ms) and builds the open-addressing index.
#include "tokenizer/rank_table.h"

#include <array>
#include <string>

namespace lens::tokenizer {
namespace {

constexpr std::array<std::int8_t, 256> make_b64_table() {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t) v = -1;
  constexpr char k_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int i = 0; i < 64; ++i) t[static_cast<std::uint8_t>(k_alphabet[i])] = static_cast<std::int8_t>(i);
  return t;
}
constexpr std::array<std::int8_t, 256> k_b64 = make_b64_table();

// Appends the decoded bytes of `in` to `out`; false on malformed input.
bool decode_base64(std::string_view in, std::string& out) {
  if (in.empty() || in.size() % 4 != 0) return false;
  for (std::size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int j = 0; j < 4; ++j) {
      const char c = in[i + j];
      if (c == '=' && i + 4 == in.size() && j >= 2) {
        v[j] = 0;
        ++pad;
      } else {
        if (pad > 0) return false;
        v[j] = k_b64[static_cast<std::uint8_t>(c)];
        if (v[j] < 0) return false;
      }
    }
    const std::uint32_t w = (std::uint32_t(v[0]) << 18) | (std::uint32_t(v[1]) << 12) |
                            (std::uint32_t(v[2]) << 6) | std::uint32_t(v[3]);
    out.push_back(static_cast<char>(w >> 16));
    if (pad < 2) out.push_back(static_cast<char>((w >> 8) & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(w & 0xFF));
  }
  return true;
}

}  // namespace

util::Result<RankTable> RankTable::parse(std::string_view file) {
  struct Entry {
    std::uint32_t rank, begin, end;
  };
  std::vector<Entry> entries;
  entries.reserve(file.size() / 12);
  std::string arena;
  arena.reserve(file.size());
  std::uint32_t max_rank = 0;
  std::size_t pos = 0;
  std::size_t line_no = 0;
  while (pos < file.size()) {
    std::size_t eol = file.find('\n', pos);
    if (eol == std::string_view::npos) eol = file.size();
    std::string_view line = file.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (line.empty()) continue;
    const std::size_t sp = line.find(' ');
    if (sp == std::string_view::npos || sp + 1 >= line.size()) {
      return util::fail(util::ErrorCode::permanent,
                        "rank file line " + std::to_string(line_no) + ": expected '<base64> <rank>'");
    }
    std::uint64_t rank = 0;
    for (char c : line.substr(sp + 1)) {
      if (c < '0' || c > '9' || rank > 0xFFFFFFF) {
        return util::fail(util::ErrorCode::permanent,
                          "rank file line " + std::to_string(line_no) + ": bad rank");
      }
      rank = rank * 10 + static_cast<std::uint64_t>(c - '0');
    }
    const std::size_t begin = arena.size();
    if (!decode_base64(line.substr(0, sp), arena)) {
      return util::fail(util::ErrorCode::permanent,
                        "rank file line " + std::to_string(line_no) + ": bad base64");
    }
    entries.push_back({static_cast<std::uint32_t>(rank), static_cast<std::uint32_t>(begin),
                       static_cast<std::uint32_t>(arena.size())});
    if (rank > max_rank) max_rank = static_cast<std::uint32_t>(rank);
  }
  if (entries.empty()) return util::fail(util::ErrorCode::permanent, "rank file is empty");

  RankTable t;
  // Re-lay the bytes out in rank order so offsets_ alone delimits each token.
  std::vector<std::uint32_t> by_rank(std::size_t(max_rank) + 1, k_no_rank);
  for (std::uint32_t i = 0; i < entries.size(); ++i) {
    if (by_rank[entries[i].rank] != k_no_rank) {
      return util::fail(util::ErrorCode::permanent,
                        "rank file: duplicate rank " + std::to_string(entries[i].rank));
    }
    by_rank[entries[i].rank] = i;
  }
  t.arena_.reserve(arena.size());
  t.offsets_.resize(std::size_t(max_rank) + 2);
  for (std::uint32_t r = 0; r <= max_rank; ++r) {
    t.offsets_[r] = static_cast<std::uint32_t>(t.arena_.size());
    if (by_rank[r] != k_no_rank) {
      const Entry& e = entries[by_rank[r]];
      t.arena_.append(arena, e.begin, e.end - e.begin);
    }
  }
  t.offsets_[std::size_t(max_rank) + 1] = static_cast<std::uint32_t>(t.arena_.size());
  t.count_ = entries.size();

  std::size_t cap = 1;
  while (cap < entries.size() * 2) cap <<= 1;  // load factor <= 0.5 keeps probes short
  t.slots_.assign(cap, Slot{});
  t.mask_ = cap - 1;
  for (std::uint32_t r = 0; r <= max_rank; ++r) {
    const std::string_view b = t.bytes_of(r);
    if (b.empty()) continue;
    if (t.find(b) != k_no_rank) {
      return util::fail(util::ErrorCode::permanent, "rank file: duplicate token bytes");
    }
    const std::uint64_t h = hash_bytes(b.data(), b.size());
    std::size_t i = static_cast<std::size_t>(h) & t.mask_;
    while (t.slots_[i].tag != 0) i = (i + 1) & t.mask_;
    t.slots_[i] = Slot{static_cast<std::uint32_t>(h >> 32) | 1u, r};
  }
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    t.byte_ranks_[b] = t.find(&c, 1);
    if (t.byte_ranks_[b] == k_no_rank) {
      return util::fail(util::ErrorCode::permanent,
                        "rank file: byte " + std::to_string(b) + " has no token");
    }
  }
  return t;
}

}  // namespace lens::tokenizer
