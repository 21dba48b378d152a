// Tokenizer::load (sha256-pinned rank files, located once, shared per process) and the
// BPE tokenizer: pre-tokenize with tiktoken's pattern, merge inside each piece.
#include "tokenizer/tokenizer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <type_traits>

#include "tokenizer/bpe.h"
#include "tokenizer/loader.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/rank_table.h"
#include "tokenizer/utf8.h"
#include "util/log.h"
#include "util/sha256.h"

#ifndef LENS_TOKENIZER_INSTALL_DIR
#define LENS_TOKENIZER_INSTALL_DIR ""
#endif
#ifndef LENS_TOKENIZER_SOURCE_DIR
#define LENS_TOKENIZER_SOURCE_DIR ""
#endif

namespace lens::tokenizer {
namespace {

struct EncodingInfo {
  std::string_view name;
  std::string_view sha256_hex;  // pinned: a different file would silently change every count
  std::array<std::pair<std::uint32_t, std::string_view>, 5> specials;  // decode only
};

const EncodingInfo& info(Encoding e) {
  static const EncodingInfo k_cl100k{"cl100k_base",
                                     "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
                                     {{{100257, "<|endoftext|>"},
                                       {100258, "<|fim_prefix|>"},
                                       {100259, "<|fim_middle|>"},
                                       {100260, "<|fim_suffix|>"},
                                       {100276, "<|endofprompt|>"}}}};
  static const EncodingInfo k_o200k{
      "o200k_base",
      "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
      {{{199999, "<|endoftext|>"}, {200018, "<|endofprompt|>"}, {0, ""}, {0, ""}, {0, ""}}}};
  return e == Encoding::cl100k_base ? k_cl100k : k_o200k;
}

// A whole file's bytes, memory-mapped (MAP_POPULATE: one fault-free pass for sha256 and the
// parser, no copy). Empty `ok` if the file cannot be opened or mapped.
class FileBytes {
 public:
  explicit FileBytes(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
      void* p =
          ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
      if (p != MAP_FAILED) {
        map_ = p;
        size_ = static_cast<std::size_t>(st.st_size);
        ok_ = true;
      }
    } else if (st.st_size == 0) {
      ok_ = true;  // empty file: reported by the sha256 check
    }
    ::close(fd);
  }
  ~FileBytes() {
    if (map_ != nullptr) ::munmap(map_, size_);
  }
  FileBytes(const FileBytes&) = delete;
  FileBytes& operator=(const FileBytes&) = delete;
  [[nodiscard]] bool ok() const { return ok_; }
  [[nodiscard]] std::string_view bytes() const {
    return map_ == nullptr ? std::string_view{} : std::string_view(static_cast<const char*>(map_), size_);
  }

 private:
  void* map_ = nullptr;
  std::size_t size_ = 0;
  bool ok_ = false;
};

// Candidate directories, in the documented order (see tokenizer.h and data/tokenizer/README.md).
std::vector<std::string> search_dirs() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("LENS_DATA_DIR"); env != nullptr && *env != '\0') {
    dirs.push_back(std::string(env) + "/tokenizer");
  }
  if (*LENS_TOKENIZER_INSTALL_DIR != '\0') dirs.emplace_back(LENS_TOKENIZER_INSTALL_DIR);
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) dirs.push_back((exe.parent_path().parent_path() / "share/lens-embed/tokenizer").string());
  if (*LENS_TOKENIZER_SOURCE_DIR != '\0') dirs.emplace_back(LENS_TOKENIZER_SOURCE_DIR);
  return dirs;
}

class BpeTokenizer final : public Tokenizer {
 public:
  BpeTokenizer(Encoding encoding, RankTable ranks, std::unique_ptr<Pretokenizer> pre)
      : encoding_(encoding), ranks_(std::move(ranks)), pre_(std::move(pre)) {}

  std::size_t count(std::string_view text) const override {
    std::size_t n = 0;
    for_each_piece(text, [&](std::size_t b, std::size_t e) { n += piece_count(text.substr(b, e - b)); });
    return n;
  }

  std::vector<std::uint32_t> encode(std::string_view text) const override {
    std::vector<std::uint32_t> out;
    out.reserve(text.size() / 4 + 4);
    for_each_piece(text, [&](std::size_t b, std::size_t e) {
      byte_pair_encode(ranks_, text.substr(b, e - b), [&](std::uint32_t r) { out.push_back(r); });
    });
    return out;
  }

  std::string decode(std::span<const std::uint32_t> ids) const override {
    std::string out;
    out.reserve(ids.size() * 4);
    for (std::uint32_t id : ids) {
      if (ranks_.has_rank(id)) {
        out.append(ranks_.bytes_of(id));
        continue;
      }
      // Special tokens never come out of encode() but may come from elsewhere; unknown
      // ids are dropped because the interface has no error channel for them.
      for (const auto& [rank, text] : info(encoding_).specials) {
        if (rank == id && !text.empty()) out.append(text);
      }
    }
    return out;
  }

  Truncated truncate(std::string_view text, std::size_t max_tokens) const override;
  std::vector<std::string_view> chunk(std::string_view text, std::size_t max_tokens,
                                      std::size_t overlap) const override;
  Encoding encoding() const override { return encoding_; }

 private:
  std::size_t piece_count(std::string_view piece) const {
    if (piece.size() == 1 || ranks_.find(piece) != k_no_rank) return 1;
    std::size_t n = 0;
    byte_pair_encode(ranks_, piece, [&](std::uint32_t) { ++n; });
    return n;
  }

  // f returns void (visit all pieces) or bool (false stops the walk).
  template <typename F>
  static bool call(F& f, std::size_t b, std::size_t e) {
    if constexpr (std::is_same_v<decltype(f(b, e)), bool>) {
      return f(b, e);
    } else {
      f(b, e);
      return true;
    }
  }

  // Calls f(begin, end) for each piece. Valid UTF-8 runs go through the pattern; each
  // byte of an invalid sequence is a piece of its own, so nothing is lost or crashes.
  template <typename F>
  void for_each_piece(std::string_view text, F&& f) const {
    std::size_t pos = 0;
    while (pos < text.size()) {
      const std::size_t run_end = utf8::valid_run_end(text, pos);
      const std::string_view run = text.substr(pos, run_end - pos);
      std::size_t at = 0;
      while (at < run.size()) {
        const Pretokenizer::Match m = pre_->next(run, at);
        if (m.begin >= run.size()) break;
        // Every code point matches some alternative of both patterns, so m.begin == at;
        // tiktoken would drop any gap, and so do we.
        if (!call(f, pos + m.begin, pos + m.end)) return;
        at = m.end;
      }
      pos = run_end;
      if (pos < text.size()) {
        if (!call(f, pos, pos + 1)) return;
        ++pos;
      }
    }
  }

  struct PieceInfo {
    std::size_t begin, end, tokens;
  };

  Encoding encoding_;
  RankTable ranks_;
  std::unique_ptr<Pretokenizer> pre_;
};

Truncated BpeTokenizer::truncate(std::string_view text, std::size_t max_tokens) const {
  // Walk pieces only until the budget is exceeded: the cost follows the kept prefix, not
  // the text (a 10 MB message truncated to 8k tokens must not be encoded in full). A long
  // piece is not counted here (its merge is the expensive part); the search below handles it.
  constexpr std::size_t k_long_walk_piece = 1024;
  std::vector<PieceInfo> pieces;
  std::size_t before_k = 0;
  bool over = false;
  for_each_piece(text, [&](std::size_t b, std::size_t e) {
    const bool long_piece = e - b > k_long_walk_piece;
    const std::size_t t = long_piece ? 0 : piece_count(text.substr(b, e - b));
    pieces.push_back({b, e, t});
    if (long_piece || t > max_tokens - before_k) {  // before_k <= max_tokens: no underflow
      over = true;
      return false;
    }
    before_k += t;
    return true;
  });
  if (!over) return {text, before_k};       // every piece was counted
  const std::size_t k = pieces.size() - 1;  // first piece that does not fit (or is long)

  // Restart point S: a piece boundary preceded by a non-space code point. Pre-tokenizing
  // any prefix text[0:L] with L >= S then yields the same pieces before S (only the
  // lookahead of \s+(?!\S) can see past a piece's end, and no whitespace run crosses S),
  // so count(text[0:L]) == tokens before S + count(text[S:L]) and we never re-encode the
  // start of a long text.
  std::size_t j = k;
  std::size_t base = before_k;
  while (j > 0 && utf8::is_white_space(utf8::last_code_point(text, pieces[j].begin))) {
    --j;
    base -= pieces[j].tokens;
  }
  const std::size_t s = pieces[j].begin;
  auto count_at = [&](std::size_t len) { return base + count(text.substr(s, len - s)); };
  // Every token has at least one byte, so a budget of at least the remaining bytes fits.
  if (max_tokens - base >= text.size() - s) return {text, count_at(text.size())};

  // Bracket the answer: count_at(lo) <= max < count_at(hi). The remaining budget of
  // max - base tokens covers at most that many longest tokens' bytes, which bounds hi;
  // galloping from small steps keeps the work near the answer.
  const std::size_t bound = s + (max_tokens - base + 1) * ranks_.max_token_bytes() + 4;
  // lo_tokens == count_at(lo) throughout, so the answer's count is never computed again.
  std::size_t lo = s;
  std::size_t lo_tokens = base;
  std::size_t hi = bound >= text.size() ? text.size() : utf8::floor_boundary(text, bound);
  if (hi == text.size()) {
    if (const std::size_t all = count_at(hi); all <= max_tokens) return {text, all};
  }
  for (std::size_t step = 64;; step *= 2) {
    std::size_t probe = utf8::floor_boundary(text, s + step);
    if (probe <= lo) probe = utf8::next_boundary(text, lo);
    if (probe >= hi) break;
    const std::size_t n = count_at(probe);
    if (n > max_tokens) {
      hi = probe;
      break;
    }
    lo = probe;
    lo_tokens = n;
  }
  // Binary search on code point boundaries. Counts are monotone except for rare local dips
  // (a longer piece can merge into fewer tokens), which the scan below picks up.
  while (utf8::next_boundary(text, lo) < hi) {
    std::size_t mid = utf8::floor_boundary(text, lo + (hi - lo) / 2);
    if (mid <= lo) mid = utf8::next_boundary(text, lo);
    if (const std::size_t n = count_at(mid); n <= max_tokens) {
      lo = mid;
      lo_tokens = n;
    } else {
      hi = mid;
    }
  }
  constexpr int k_dip_scan = 8;  // code points looked at beyond the first one that overflows
  for (bool extended = true; extended;) {
    extended = false;
    std::size_t c = lo;
    for (int i = 0; i < k_dip_scan && c < text.size(); ++i) {
      c = utf8::next_boundary(text, c);
      if (const std::size_t n = count_at(c); n <= max_tokens) {
        lo = c;
        lo_tokens = n;
        extended = true;
        break;
      }
    }
  }
  return {text.substr(0, lo), lo_tokens};
}

std::vector<std::string_view> BpeTokenizer::chunk(std::string_view text, std::size_t max_tokens,
                                                  std::size_t overlap) const {
  std::vector<std::string_view> out;
  if (text.empty()) return out;
  if (max_tokens == 0) max_tokens = 1;
  if (overlap >= max_tokens) overlap = max_tokens - 1;  // REQUIRES violated: clamp, never loop
  std::size_t start = 0;
  for (;;) {
    const std::string_view rest = text.substr(start);
    std::string_view piece = truncate(rest, max_tokens).text;
    // A code point that alone needs more than max_tokens tokens (e.g. a rare emoji with
    // max_tokens 1) still has to go somewhere: it becomes its own over-budget chunk.
    if (piece.empty()) piece = rest.substr(0, utf8::next_boundary(rest, 0));
    out.push_back(piece);
    if (piece.size() == rest.size()) break;
    std::size_t next = piece.size();
    if (overlap > 0) {
      const std::vector<std::uint32_t> ids = encode(piece);
      if (ids.size() > overlap) {
        std::size_t off = 0;
        for (std::size_t i = 0; i + overlap < ids.size(); ++i)
          off += ranks_.bytes_of(ids[i]).size();
        // Round down to a code point so the overlap holds at least `overlap` tokens' text.
        std::size_t b = utf8::floor_boundary(piece, off);
        if (b == 0) b = utf8::next_boundary(piece, off);
        next = std::min(b, piece.size());
      }
    }
    start += next;
  }
  return out;
}

}  // namespace

namespace detail {

util::Result<std::shared_ptr<const Tokenizer>> load_file(Encoding encoding, const std::string& path) {
  const EncodingInfo& inf = info(encoding);
  const FileBytes file(path);
  if (!file.ok()) return util::fail(util::ErrorCode::not_found, path + ": cannot open");
  const std::string got = util::to_hex(util::sha256(file.bytes()));
  if (got != inf.sha256_hex) {
    return util::fail(util::ErrorCode::permanent,
                      path + ": sha256 " + got + " is not the pinned " + std::string(inf.sha256_hex));
  }
  auto ranks = RankTable::parse(file.bytes());
  if (!ranks) return util::fail(ranks.error().code, path + ": " + ranks.error().message);
  auto pre = Pretokenizer::create(encoding);
  if (!pre) return std::unexpected(pre.error());
  return std::make_shared<const BpeTokenizer>(encoding, std::move(*ranks), std::move(*pre));
}

util::Result<std::shared_ptr<const Tokenizer>> load_uncached(Encoding encoding) {
  const std::string file_name = std::string(info(encoding).name) + ".tiktoken";
  std::string tried;
  for (const std::string& dir : search_dirs()) {
    const std::string path = dir + "/" + file_name;
    // A file that exists but is wrong is an error, not a reason to try the next directory:
    // silently using another copy would hide a broken install.
    auto loaded = load_file(encoding, path);
    // Which copy was used (an installed package, $LENS_DATA_DIR, the source tree) is the
    // first question when a count looks wrong: --verbose says it.
    if (loaded) util::log_debug("tokenizer: loaded {}", path);
    if (loaded || loaded.error().code != util::ErrorCode::not_found) return loaded;
    tried += (tried.empty() ? "" : ", ") + path;
  }
  return util::fail(util::ErrorCode::not_found,
                    file_name + " not found (set LENS_DATA_DIR); tried: " + tried);
}

}  // namespace detail

util::Result<Encoding> parse_encoding(std::string_view name) {
  if (name == "cl100k_base") return Encoding::cl100k_base;
  if (name == "o200k_base") return Encoding::o200k_base;
  return util::fail(util::ErrorCode::invalid_argument,
                    "unknown encoding '" + std::string(name) + "' (cl100k_base, o200k_base)");
}

std::string_view to_string(Encoding encoding) {
  return info(encoding).name;
}

util::Result<std::shared_ptr<const Tokenizer>> Tokenizer::load(Encoding encoding) {
  static std::mutex mutex;
  static std::shared_ptr<const Tokenizer> cache[2];
  const std::lock_guard lock(mutex);
  auto& slot = cache[encoding == Encoding::cl100k_base ? 0 : 1];
  if (slot) return slot;
  auto loaded = detail::load_uncached(encoding);
  if (loaded) slot = *loaded;  // failures are not cached: the file may appear later
  return loaded;
}

}  // namespace lens::tokenizer
