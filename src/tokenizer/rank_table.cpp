// Parses .tiktoken rank files in one pass (hand-rolled base64: the file is 100k-200k lines
// and must load in well under 50 ms) and builds the open-addressing index.
#include "tokenizer/rank_table.h"

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>

namespace lens::tokenizer {
namespace {

constexpr std::array<std::int8_t, 256> make_b64_table() {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t)
    v = -1;
  constexpr char k_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int i = 0; i < 64; ++i)
    t[static_cast<std::uint8_t>(k_alphabet[i])] = static_cast<std::int8_t>(i);
  return t;
}
constexpr std::array<std::int8_t, 256> k_b64 = make_b64_table();

// Decodes `in` to `out` (room for in.size() / 4 * 3 bytes); returns the byte count, or -1
// on malformed input. Writes through a raw pointer: push_back per byte made loading slow.
long decode_base64(std::string_view in, char* out) {
  if (in.empty() || in.size() % 4 != 0) return -1;
  char* o = out;
  for (std::size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    const int pad = last ? (in[i + 3] == '=') + (in[i + 2] == '=' && in[i + 3] == '=') : 0;
    const int a = k_b64[static_cast<std::uint8_t>(in[i])];
    const int b = k_b64[static_cast<std::uint8_t>(in[i + 1])];
    const int c = pad >= 2 ? 0 : k_b64[static_cast<std::uint8_t>(in[i + 2])];
    const int d = pad >= 1 ? 0 : k_b64[static_cast<std::uint8_t>(in[i + 3])];
    if ((a | b | c | d) < 0) return -1;
    const std::uint32_t w =
        (std::uint32_t(a) << 18) | (std::uint32_t(b) << 12) | (std::uint32_t(c) << 6) | std::uint32_t(d);
    *o++ = static_cast<char>(w >> 16);
    if (pad < 2) *o++ = static_cast<char>((w >> 8) & 0xFF);
    if (pad < 1) *o++ = static_cast<char>(w & 0xFF);
  }
  return o - out;
}

}  // namespace

RankTable::ZeroedPages::ZeroedPages(std::size_t bytes) {
  constexpr std::size_t k_huge = 2u << 20;
  const std::size_t size = (bytes + k_huge - 1) / k_huge * k_huge;
  // Over-allocate by one huge page so the region can start on a 2 MB boundary.
  void* raw = ::mmap(nullptr, size + k_huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return;
  const auto addr = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = (addr + k_huge - 1) & ~(std::uintptr_t(k_huge) - 1);
  if (aligned > addr) ::munmap(raw, aligned - addr);
  const std::size_t tail = (addr + size + k_huge) - (aligned + size);
  if (tail > 0) ::munmap(reinterpret_cast<void*>(aligned + size), tail);
  p_ = reinterpret_cast<void*>(aligned);
  size_ = size;
  (void)::madvise(p_, size_, MADV_HUGEPAGE);  // a hint: without THP it is just slower
}

RankTable::ZeroedPages& RankTable::ZeroedPages::operator=(ZeroedPages&& o) noexcept {
  if (this != &o) {
    if (p_ != nullptr) ::munmap(p_, size_);
    p_ = o.p_;
    size_ = o.size_;
    o.p_ = nullptr;
  }
  return *this;
}

RankTable::ZeroedPages::~ZeroedPages() {
  if (p_ != nullptr) ::munmap(p_, size_);
}

util::Result<RankTable> RankTable::parse(std::string_view file) {
  // One pass straight into the final layout. The files list ranks 0, 1, 2, ... in order,
  // so the token bytes of rank r follow those of rank r-1 and offsets_ delimits them.
  RankTable t;
  const std::size_t arena_cap = file.size() / 4 * 3 + 8;
  t.arena_.reset(new char[arena_cap]);
  t.offsets_.reserve(file.size() / 8);
  std::size_t used = 0;
  std::size_t pos = 0;
  std::size_t line_no = 0;
  auto bad = [&](const char* what) {
    return util::fail(util::ErrorCode::permanent, "rank file line " + std::to_string(line_no) + ": " + what);
  };
  while (pos < file.size()) {
    std::size_t eol = file.find('\n', pos);
    if (eol == std::string_view::npos) eol = file.size();
    const std::string_view line = file.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (line.empty()) continue;
    const std::size_t sp = line.find(' ');
    if (sp == std::string_view::npos || sp + 1 >= line.size()) return bad("expected '<base64> <rank>'");
    std::uint64_t rank = 0;
    for (char c : line.substr(sp + 1)) {
      if (c < '0' || c > '9' || rank > 0xFFFFFFF) return bad("bad rank");
      rank = rank * 10 + static_cast<std::uint64_t>(c - '0');
    }
    // Other orders are valid tiktoken files but not the pinned ones; refusing keeps one path.
    if (rank != t.offsets_.size()) return bad("ranks are not consecutive from 0");
    if (used + sp / 4 * 3 + 8 > arena_cap) return bad("line too long");
    const long n = decode_base64(line.substr(0, sp), t.arena_.get() + used);
    if (n <= 0) return bad("bad base64");
    t.offsets_.push_back(static_cast<std::uint32_t>(used));
    used += static_cast<std::size_t>(n);
    t.max_token_bytes_ = std::max(t.max_token_bytes_, static_cast<std::size_t>(n));
  }
  if (t.offsets_.empty()) return util::fail(util::ErrorCode::permanent, "rank file is empty");
  const std::size_t max_rank = t.offsets_.size() - 1;
  t.offsets_.push_back(static_cast<std::uint32_t>(used));
  std::memset(t.arena_.get() + used, 0, 8);  // spare bytes that word-wise compares may read
  t.count_ = max_rank + 1;

  std::size_t cap = 1;
  while (cap < t.count_ * 2)
    cap <<= 1;  // load factor <= 0.5 keeps probes short
  t.slot_pages_ = ZeroedPages(cap * sizeof(Slot));
  t.slots_ = static_cast<Slot*>(t.slot_pages_.get());
  if (t.slots_ == nullptr) return util::fail(util::ErrorCode::permanent, "rank table: out of memory");
  t.mask_ = cap - 1;
  t.pair_ranks_.assign(65536, k_no_rank);
  for (std::uint32_t r = 0; r <= max_rank; ++r) {
    const std::string_view b = t.bytes_of(r);
    if (b.empty()) continue;
    if (b.size() == 2) t.pair_ranks_[pair_index(b.data())] = r;
    const HashedBytes hb = hash_bytes(b.data(), b.size());
    std::size_t i = static_cast<std::size_t>(hb.hash) & t.mask_;
    while (t.slots_[i].len != 0)
      i = (i + 1) & t.mask_;
    t.slots_[i] = Slot{hb.head, r, static_cast<std::uint32_t>(b.size())};
  }
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    t.byte_ranks_[b] = t.find(&c, 1);
    if (t.byte_ranks_[b] == k_no_rank) {
      return util::fail(util::ErrorCode::permanent, "rank file: byte " + std::to_string(b) + " has no token");
    }
  }
  return t;
}

}  // namespace lens::tokenizer
